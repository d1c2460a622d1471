//! The payment gateway: a trait a real provider (Stripe, Adyen, …) plugs in
//! behind, and the mock provider Stampede runs with locally and in tests.

use std::collections::HashMap;
use std::future::Future;
use std::io::ErrorKind;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use rand::Rng;
use stampede_common::clock::now_ms;
use stampede_common::ids::random_hex;

use crate::CheckoutConfig;

/// A charge to capture.
pub struct ChargeRequest<'a> {
    pub amount_cents: i64,
    pub method: &'a str,
    /// Sent to the provider so a retried capture charges once.
    pub idempotency_key: &'a str,
    pub description: &'a str,
    /// Kept with the charge as the provider's metadata (Stripe's
    /// `metadata`), so that [`PaymentGateway::charges_since`] can tell which
    /// hold (its public id) and which user a charge was for.
    pub hold: &'a str,
    pub user: &'a str,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum GatewayError {
    #[error("declined: {0}")]
    Declined(String),
    #[error("payment provider unavailable: {0}")]
    Unavailable(String),
}

/// A payment provider.
pub trait PaymentGateway: Send + Sync + 'static {
    /// Captures `amount_cents`; returns the provider's charge id.
    fn charge(&self, req: ChargeRequest<'_>) -> impl Future<Output = Result<String, GatewayError>> + Send;
    /// Refunds a captured charge in full; returns the provider's refund id.
    /// Refunding twice is harmless.
    fn refund(&self, charge_id: &str) -> impl Future<Output = Result<String, GatewayError>> + Send;
    /// The charge captured under `idempotency_key`, if any, without
    /// charging (Stripe: a search on the metadata the charge carries).
    fn find_charge(&self, idempotency_key: &str) -> impl Future<Output = Result<Option<String>, GatewayError>> + Send;
    /// Every charge captured at or after `since_ms` (Unix milliseconds),
    /// refunded or not: what the charge reconciler walks.
    fn charges_since(&self, since_ms: i64) -> impl Future<Output = Result<Vec<ProviderCharge>, GatewayError>> + Send;
}

/// A captured charge as the provider lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProviderCharge {
    pub id: String,
    pub amount_cents: i64,
    /// The public hold id and the user of [`ChargeRequest`].
    pub hold: String,
    pub user: String,
    pub created_ms: i64,
    pub refunded: bool,
}

/// The mock provider: configurable latency (`STAMPEDE_PAYMENT_LATENCY_MS`)
/// and random decline rate (`STAMPEDE_PAYMENT_DECLINE_RATE`);
/// `pm_card_declined` always declines. Keeps its ledger in memory so tests
/// can count charges and refunds, or, with `STAMPEDE_PAYMENT_LEDGER_DIR`, in
/// a directory shared by every process and kept across restarts, as a real
/// provider's books are (see [`FileLedger`]).
pub struct MockGateway {
    latency: Duration,
    decline_rate: f64,
    ledger: Mutex<Ledger>,
    files: Option<FileLedger>,
}

#[derive(Default)]
struct Ledger {
    by_key: HashMap<String, String>,
    charges: HashMap<String, ProviderCharge>,
}

impl MockGateway {
    pub fn new(latency: Duration, decline_rate: f64) -> Self {
        Self { latency, decline_rate, ledger: Mutex::default(), files: None }
    }

    pub fn from_config(config: &CheckoutConfig) -> Self {
        let mut gateway = Self::new(Duration::from_millis(config.payment_latency_ms), config.payment_decline_rate);
        gateway.files = config.payment_ledger_dir.as_deref().map(|d| FileLedger { dir: PathBuf::from(d) });
        gateway
    }

    /// Every charge captured so far.
    pub fn charges(&self) -> Vec<ProviderCharge> {
        if let Some(files) = &self.files {
            return files.charges();
        }
        self.ledger.lock().map(|l| l.charges.values().cloned().collect()).unwrap_or_default()
    }

    /// Declines or records a charge (the provider's side of the call).
    fn capture(&self, req: &ChargeRequest<'_>) -> Result<String, GatewayError> {
        if req.method == "pm_card_declined" {
            return Err(GatewayError::Declined("your card was declined".into()));
        }
        if self.decline_rate > 0.0 && rand::rng().random_bool(self.decline_rate) {
            return Err(GatewayError::Declined("insufficient funds".into()));
        }
        if let Some(files) = &self.files {
            return files.charge(req).map_err(|e| GatewayError::Unavailable(format!("ledger: {e}")));
        }
        let mut ledger = self.ledger.lock().map_err(|_| GatewayError::Unavailable("ledger poisoned".into()))?;
        if let Some(id) = ledger.by_key.get(req.idempotency_key) {
            return Ok(id.clone());
        }
        let id = format!("ch_{}", random_hex(12));
        ledger.by_key.insert(req.idempotency_key.to_owned(), id.clone());
        let charge = ProviderCharge {
            id: id.clone(),
            amount_cents: req.amount_cents,
            hold: req.hold.to_owned(),
            user: req.user.to_owned(),
            created_ms: now_ms(),
            refunded: false,
        };
        ledger.charges.insert(id.clone(), charge);
        Ok(id)
    }
}

impl PaymentGateway for MockGateway {
    async fn charge(&self, req: ChargeRequest<'_>) -> Result<String, GatewayError> {
        // Half the latency on the way there, half on the way back: as with a
        // real provider, a caller that dies meanwhile leaves a captured charge.
        tokio::time::sleep(self.latency / 2).await;
        let charged = self.capture(&req);
        tokio::time::sleep(self.latency - self.latency / 2).await;
        charged
    }

    async fn refund(&self, charge_id: &str) -> Result<String, GatewayError> {
        tokio::time::sleep(self.latency / 2).await;
        if let Some(files) = &self.files {
            return files.refund(charge_id);
        }
        let mut ledger = self.ledger.lock().map_err(|_| GatewayError::Unavailable("ledger poisoned".into()))?;
        match ledger.charges.get_mut(charge_id) {
            Some(c) => {
                c.refunded = true;
                Ok(format!("re_{}", &charge_id[3..]))
            }
            None => Err(GatewayError::Unavailable(format!("unknown charge {charge_id}"))),
        }
    }

    async fn find_charge(&self, idempotency_key: &str) -> Result<Option<String>, GatewayError> {
        if let Some(files) = &self.files {
            return Ok(files.find(idempotency_key));
        }
        let ledger = self.ledger.lock().map_err(|_| GatewayError::Unavailable("ledger poisoned".into()))?;
        Ok(ledger.by_key.get(idempotency_key).cloned())
    }

    async fn charges_since(&self, since_ms: i64) -> Result<Vec<ProviderCharge>, GatewayError> {
        let mut all = self.charges();
        all.retain(|c| c.created_ms >= since_ms);
        all.sort_by_key(|c| c.created_ms);
        Ok(all)
    }
}

/// The mock provider's books in a directory, for stacks of several
/// processes and for proving that no charge is lost across restarts
/// (`scripts/chaos`): `charges/<idempotency key>` holds `<charge id>
/// <amount> <hold> <user> <created ms>` — published with an exclusive hard link, so two processes
/// charging with one key get one charge — `ids/<charge id>` links to the
/// same file, and `refunds/<charge id>` marks a refund.
pub struct FileLedger {
    dir: PathBuf,
}

impl FileLedger {
    fn sub(&self, name: &str) -> std::io::Result<PathBuf> {
        let d = self.dir.join(name);
        std::fs::create_dir_all(&d)?;
        Ok(d)
    }

    fn charge(&self, req: &ChargeRequest<'_>) -> std::io::Result<String> {
        let key = req.idempotency_key;
        let word = |s: &str| !s.is_empty() && !s.contains(char::is_whitespace);
        if !word(req.hold) || !word(req.user) {
            return Err(std::io::Error::new(ErrorKind::InvalidInput, "hold and user must be single words"));
        }
        let safe = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | ':' | '.');
        if key.is_empty() || key.len() > 240 || !key.chars().all(safe) || key.starts_with('.') {
            return Err(std::io::Error::new(ErrorKind::InvalidInput, "idempotency key unfit for a file name"));
        }
        let by_key = self.sub("charges")?.join(key);
        if let Ok(text) = std::fs::read_to_string(&by_key) {
            return Ok(text.split_whitespace().next().unwrap_or_default().to_owned());
        }
        let id = format!("ch_{}", random_hex(12));
        let tmp = self.sub("tmp")?.join(&id);
        std::fs::write(&tmp, format!("{id} {} {} {} {}\n", req.amount_cents, req.hold, req.user, now_ms()))?;
        let published = std::fs::hard_link(&tmp, &by_key);
        let result = match published {
            Ok(()) => std::fs::hard_link(&tmp, self.sub("ids")?.join(&id)).map(|()| id),
            // Another request with this key won: its charge is the charge.
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                std::fs::read_to_string(&by_key).map(|t| t.split_whitespace().next().unwrap_or_default().to_owned())
            }
            Err(e) => Err(e),
        };
        let _ = std::fs::remove_file(&tmp);
        result
    }

    /// The charge id filed under `key`, if any.
    fn find(&self, key: &str) -> Option<String> {
        if key.is_empty() || key.contains('/') || key.starts_with('.') {
            return None;
        }
        let text = std::fs::read_to_string(self.dir.join("charges").join(key)).ok()?;
        text.split_whitespace().next().map(str::to_owned)
    }

    fn refund(&self, charge_id: &str) -> Result<String, GatewayError> {
        let unavailable = |e: std::io::Error| GatewayError::Unavailable(format!("ledger: {e}"));
        let known = !charge_id.contains(['/', '.']) && self.sub("ids").map_err(unavailable)?.join(charge_id).exists();
        if !known {
            return Err(GatewayError::Unavailable(format!("unknown charge {charge_id}")));
        }
        let marker = self.sub("refunds").map_err(unavailable)?.join(charge_id);
        match std::fs::OpenOptions::new().write(true).create_new(true).open(&marker) {
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
            Err(e) => return Err(unavailable(e)),
        }
        Ok(format!("re_{}", charge_id.trim_start_matches("ch_")))
    }

    fn charges(&self) -> Vec<ProviderCharge> {
        let Ok(dir) = self.sub("ids") else { return Vec::new() };
        let refunds = self.dir.join("refunds");
        let mut out = Vec::new();
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let id = entry.file_name().to_string_lossy().into_owned();
            let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
            let field = |i: usize| text.split_whitespace().nth(i).unwrap_or_default().to_owned();
            out.push(ProviderCharge {
                refunded: refunds.join(&id).exists(),
                amount_cents: field(1).parse().unwrap_or(0),
                hold: field(2),
                user: field(3),
                created_ms: field(4).parse().unwrap_or(0),
                id,
            });
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_file_ledger_charges_once_per_key_across_gateways() {
        let dir = std::env::temp_dir().join(format!("stampede-ledger-{}", random_hex(4)));
        let gateway = || {
            let mut g = MockGateway::new(Duration::ZERO, 0.0);
            g.files = Some(FileLedger { dir: dir.clone() });
            g
        };
        let (a, b) = (gateway(), gateway());
        let req = |key| ChargeRequest {
            amount_cents: 500,
            method: "pm_card_visa",
            idempotency_key: key,
            description: "t",
            hold: "1-x",
            user: "7",
        };
        let first = a.charge(req("1-x:7:k")).await.expect("charge");
        assert_eq!(b.charge(req("1-x:7:k")).await.expect("same key, other process"), first);
        let other = b.charge(req("1-x:7:k2")).await.expect("charge");
        assert_ne!(other, first);
        b.refund(&first).await.expect("refund");
        a.refund(&first).await.expect("a second refund is harmless");
        assert!(a.refund("ch_000000000000000000000000").await.is_err(), "unknown charge");
        assert!(a.charge(req("../escape")).await.is_err());
        let mut charges = a.charges();
        charges.sort_by_key(|c| c.id != first);
        assert_eq!(charges.len(), 2);
        assert!(charges[0].refunded && !charges[1].refunded);
        assert_eq!(charges[0].amount_cents, 500);
        assert_eq!(b.find_charge("1-x:7:k").await.expect("find"), Some(first.clone()));
        assert_eq!(b.find_charge("1-x:7:never").await.expect("find"), None);
        assert_eq!(b.find_charge("../x").await.expect("find"), None);
        assert_eq!((charges[0].hold.as_str(), charges[0].user.as_str()), ("1-x", "7"));
        assert!(charges[0].created_ms > 0);
        assert_eq!(a.charges_since(charges[0].created_ms.max(charges[1].created_ms) + 1).await.expect("list"), Vec::new());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
