//! E-mail (feature `mail`: auth and the notifier): one message shape,
//! [`Mail`], rendered as RFC 5322 text (multipart/alternative, plain text
//! and HTML), and one [`Mailer`] that delivers it either over SMTP
//! (`STAMPEDE_SMTP_URL`, with `lettre`'s pooled async transport) or, when
//! that is unset, into a mail directory (`STAMPEDE_MAIL_DIR`).
//!
//! The directory sink publishes each message with an atomic hard link named
//! after it, so one name is written once however often it is delivered. SMTP
//! cannot promise that by itself: the notifier keeps its own sent marker
//! (see `stampede_checkout`'s notifier) and gives each message a stable
//! `Message-ID` so a receiver can drop a copy sent again after a crash
//! between the server's 250 and the marker.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use lettre::address::Envelope;
use lettre::{Address, AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use metrics::{Unit, counter, describe_counter};

use crate::backoff::Backoff;
use crate::config::{ConfigError, Env};
use crate::ids::random_hex;

/// Where e-mail goes and who it is from.
#[derive(Clone, Debug)]
pub struct MailConfig {
    /// The mail directory, used when `smtp` is `None`.
    pub dir: String,
    /// `(host, port)` of an SMTP relay (`STAMPEDE_SMTP_URL=smtp://host:port`).
    pub smtp: Option<(String, u16)>,
    /// The `From:` header, e.g. `Stampede <tickets@stampede.local>`.
    pub from: String,
    /// The envelope sender (the address inside `from`).
    pub from_address: String,
}

impl MailConfig {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let smtp = match env.optional("STAMPEDE_SMTP_URL").filter(|s| !s.trim().is_empty()) {
            None => None,
            Some(url) => Some(parse_smtp_url(&url).map_err(|reason| ConfigError { var: "STAMPEDE_SMTP_URL".into(), reason })?),
        };
        let from = env.string_or("STAMPEDE_MAIL_FROM", "Stampede <tickets@stampede.local>");
        let from_address = from
            .rsplit_once('<')
            .and_then(|(_, rest)| rest.strip_suffix('>'))
            .unwrap_or(&from)
            .trim()
            .to_owned();
        if from.contains(['\r', '\n']) || from_address.parse::<Address>().is_err() {
            return Err(ConfigError { var: "STAMPEDE_MAIL_FROM".into(), reason: "want an address or `Name <address>`".into() });
        }
        Ok(Self { dir: env.string_or("STAMPEDE_MAIL_DIR", ".run/mail"), smtp, from, from_address })
    }
}

/// `smtp://host[:port]` (port 25 by default). Only plain SMTP: the relay is
/// expected on loopback or a private network.
fn parse_smtp_url(url: &str) -> Result<(String, u16), String> {
    let rest = url.strip_prefix("smtp://").ok_or("want smtp://host:port (plain SMTP only)")?;
    let rest = rest.trim_end_matches('/');
    let (host, port) = match rest.rsplit_once(':') {
        Some((h, p)) => (h, p.parse::<u16>().map_err(|_| format!("bad port {p:?}"))?),
        None => (rest, 25),
    };
    if host.is_empty() || host.contains(['/', '@', '?']) {
        return Err(format!("bad host {host:?}"));
    }
    Ok((host.trim_matches(['[', ']']).to_owned(), port))
}

/// One message: a recipient, a subject and both bodies.
#[derive(Clone, Debug)]
pub struct Mail {
    pub to: String,
    pub subject: String,
    pub text: String,
    pub html: String,
    /// The local part of `Message-ID` (`<id@stampede.local>`): stable per
    /// message, so a copy sent twice can be recognised.
    pub id: String,
    /// Extra headers (`X-Stampede-Order`, …).
    pub headers: Vec<(&'static str, String)>,
}

/// Escapes text for an HTML body.
pub fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// Cents as `12.50`.
pub fn money(cents: i64) -> String {
    format!("{}.{:02}", cents / 100, cents % 100)
}

/// A header value on one line.
fn one_line(s: &str) -> String {
    s.replace(['\r', '\n'], " ")
}

/// A free-text header value (the subject): on one line, and RFC 2047
/// Q-encoded when it is not ASCII (`=?utf-8?q?…?=` words of at most 75
/// characters, folded), so any relay carries it.
fn encoded_text(s: &str) -> String {
    let s = one_line(s);
    if s.is_ascii() {
        return s;
    }
    let mut words = Vec::new();
    let mut word = String::new();
    for c in s.chars() {
        let mut piece = String::new();
        if c.is_ascii_alphanumeric() || "!*+-/".contains(c) {
            piece.push(c);
        } else if c == ' ' {
            piece.push('_');
        } else {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                piece.push_str(&format!("={b:02X}"));
            }
        }
        // "=?utf-8?q?" + word + "?=" within 75 characters.
        if word.len() + piece.len() > 75 - 12 {
            words.push(std::mem::take(&mut word));
        }
        word.push_str(&piece);
    }
    words.push(word);
    words.iter().map(|w| format!("=?utf-8?q?{w}?=")).collect::<Vec<_>>().join("\r\n ")
}

impl Mail {
    /// The whole message: headers, then the plain text and HTML
    /// alternatives (UTF-8, sent 8-bit).
    pub fn format(&self, from: &str) -> String {
        let boundary = format!("stampede-{}", random_hex(8));
        let mut head = format!(
            "From: {}\r\nTo: {}\r\nSubject: {}\r\nMessage-ID: <{}@stampede.local>\r\n",
            one_line(from),
            one_line(&self.to),
            encoded_text(&self.subject),
            one_line(&self.id)
        );
        for (name, value) in &self.headers {
            head.push_str(&format!("{name}: {}\r\n", one_line(value)));
        }
        format!(
            "{head}MIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary=\"{boundary}\"\r\n\r\n\
             --{boundary}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n{}\r\n\
             --{boundary}\r\nContent-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n{}\r\n--{boundary}--\r\n",
            self.text, self.html
        )
    }
}

/// Why a delivery failed: worth retrying, or not.
#[derive(Debug, thiserror::Error)]
pub enum MailError {
    /// The relay is down or said 4xx; the directory could not be written.
    #[error("e-mail delivery failed (will retry): {0}")]
    Transient(String),
    /// The relay refused the message for good (5xx), or the address is bad.
    #[error("e-mail refused: {0}")]
    Permanent(String),
}

/// What a delivery did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delivered {
    Sent,
    /// The directory already holds a message of this name (not written again).
    AlreadySent,
}

enum Transport {
    Dir(PathBuf),
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
}

/// Delivers [`Mail`] over SMTP or into the mail directory.
pub struct Mailer {
    transport: Transport,
    from: String,
    from_address: Address,
}

impl Mailer {
    pub fn new(config: &MailConfig) -> Self {
        describe_counter!("emails_sent_total", Unit::Count, "E-mails delivered (to the SMTP relay or the mail directory).");
        describe_counter!("emails_retried_total", Unit::Count, "E-mail delivery attempts that failed and were retried.");
        describe_counter!("emails_dead_total", Unit::Count, "E-mails given up on (refused for good, or failing past the retries).");
        // At zero from the start: the delivery panel shows a quiet relay as 0,
        // not as no data.
        for name in ["emails_sent_total", "emails_retried_total", "emails_dead_total"] {
            counter!(name).increment(0);
        }
        let transport = match &config.smtp {
            Some((host, port)) => Transport::Smtp(
                AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host.as_str())
                    .port(*port)
                    .timeout(Some(Duration::from_secs(10)))
                    .build(),
            ),
            None => Transport::Dir(PathBuf::from(&config.dir)),
        };
        // Checked by MailConfig::from_env; a literal config falls back.
        let from_address = config.from_address.parse().unwrap_or_else(|_| Address::new("tickets", "stampede.local").expect("a valid address"));
        Self { transport, from: config.from.clone(), from_address }
    }

    /// Whether this mailer speaks SMTP (else it writes the mail directory).
    pub fn is_smtp(&self) -> bool {
        matches!(self.transport, Transport::Smtp(_))
    }

    /// With the directory sink: whether `name` was already written.
    /// Always false over SMTP (the caller keeps its own marker).
    pub fn already_written(&self, name: &str) -> bool {
        match &self.transport {
            Transport::Dir(dir) => dir.join(format!("{name}.eml")).exists(),
            Transport::Smtp(_) => false,
        }
    }

    /// One attempt: sends `mail`, or writes it to the directory as
    /// `<name>.eml` unless that exists.
    pub async fn deliver(&self, name: &str, mail: &Mail) -> Result<Delivered, MailError> {
        let message = mail.format(&self.from);
        let outcome = match &self.transport {
            Transport::Dir(dir) => {
                let path = dir.join(format!("{name}.eml"));
                match publish(dir, &path, &message).await {
                    Ok(true) => Delivered::Sent,
                    Ok(false) => Delivered::AlreadySent,
                    Err(e) => return Err(MailError::Transient(format!("{e:#}"))),
                }
            }
            Transport::Smtp(smtp) => {
                let to: Address = mail.to.parse().map_err(|e| MailError::Permanent(format!("bad recipient {:?}: {e}", mail.to)))?;
                let envelope = Envelope::new(Some(self.from_address.clone()), vec![to]).map_err(|e| MailError::Permanent(e.to_string()))?;
                smtp.send_raw(&envelope, message.as_bytes()).await.map_err(|e| {
                    if e.is_permanent() { MailError::Permanent(e.to_string()) } else { MailError::Transient(e.to_string()) }
                })?;
                Delivered::Sent
            }
        };
        if outcome == Delivered::Sent {
            counter!("emails_sent_total").increment(1);
        }
        Ok(outcome)
    }

    /// Up to `attempts` deliveries, transient failures retried after a
    /// jittered wait; a permanent refusal is not retried.
    pub async fn deliver_with_retries(&self, name: &str, mail: &Mail, attempts: u32, mut backoff: Backoff) -> Result<Delivered, MailError> {
        let mut tried = 0;
        loop {
            tried += 1;
            match self.deliver(name, mail).await {
                Err(MailError::Transient(e)) if tried < attempts => {
                    counter!("emails_retried_total").increment(1);
                    tracing::warn!(name, error = %e, attempt = tried, "e-mail delivery failed; retrying");
                    tokio::time::sleep(backoff.next_delay()).await;
                }
                other => return other,
            }
        }
    }

    /// Delivers `mail` in the background, retrying for about a minute; one
    /// that still fails is counted dead and logged. For e-mails no stream
    /// entry stands behind (the account e-mails): the request that asked for
    /// it does not wait, and takes as long whether or not one is sent.
    pub fn send_in_background(self: &std::sync::Arc<Self>, name: String, mail: Mail) {
        let me = self.clone();
        tokio::spawn(async move {
            let backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(15));
            if let Err(e) = me.deliver_with_retries(&name, &mail, 8, backoff).await {
                counter!("emails_dead_total").increment(1);
                tracing::error!(name, error = %e, "e-mail given up on");
            }
        });
    }
}

/// Writes `message` to a temporary file, then links it to `path`: the link
/// fails if `path` exists, so one name is never written twice, and a reader
/// never sees half a message. True if this call published it.
pub async fn publish(dir: &Path, path: &Path, message: &str) -> anyhow::Result<bool> {
    tokio::fs::create_dir_all(dir).await.with_context(|| format!("creating {}", dir.display()))?;
    let tmp = dir.join(format!(".tmp-{}", random_hex(8)));
    tokio::fs::write(&tmp, message).await.with_context(|| format!("writing {}", tmp.display()))?;
    let linked = tokio::fs::hard_link(&tmp, path).await;
    let _ = tokio::fs::remove_file(&tmp).await;
    match linked {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(e).with_context(|| format!("publishing {}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_smtp_url_and_the_sender() {
        let cfg = MailConfig::from_env(&Env::from_pairs([])).expect("defaults");
        assert!(cfg.smtp.is_none());
        assert_eq!(cfg.from_address, "tickets@stampede.local");
        let cfg = MailConfig::from_env(&Env::from_pairs([("STAMPEDE_SMTP_URL", "smtp://127.0.0.1:2525"), ("STAMPEDE_MAIL_FROM", "x@y.z")])).expect("smtp");
        assert_eq!(cfg.smtp, Some(("127.0.0.1".to_owned(), 2525)));
        assert_eq!(cfg.from_address, "x@y.z");
        for bad in ["http://x:1", "smtp://x:port", "smtp://:25", "smtps://x:465"] {
            let err = MailConfig::from_env(&Env::from_pairs([("STAMPEDE_SMTP_URL", bad)])).expect_err(bad);
            assert_eq!(err.var, "STAMPEDE_SMTP_URL");
        }
        let err = MailConfig::from_env(&Env::from_pairs([("STAMPEDE_MAIL_FROM", "not an address")])).expect_err("from");
        assert_eq!(err.var, "STAMPEDE_MAIL_FROM");
    }

    #[test]
    fn formats_both_alternatives_and_keeps_headers_on_one_line() {
        let mail = Mail {
            to: "a@b.c".into(),
            subject: "Hi\r\nBcc: evil@x.y".into(),
            text: "plain".into(),
            html: "<p>html</p>".into(),
            id: "m1".into(),
            headers: vec![("X-Stampede-Order", "1-x".into())],
        };
        let m = mail.format("Stampede <t@s.l>");
        assert!(m.starts_with("From: Stampede <t@s.l>\r\nTo: a@b.c\r\nSubject: Hi  Bcc: evil@x.y\r\nMessage-ID: <m1@stampede.local>\r\nX-Stampede-Order: 1-x\r\n"));
        assert!(m.contains("text/plain; charset=utf-8") && m.contains("text/html; charset=utf-8") && m.contains("<p>html</p>"));
    }

    #[test]
    fn a_subject_that_is_not_ascii_is_q_encoded_and_folded() {
        assert_eq!(encoded_text("Plain <ASCII>"), "Plain <ASCII>");
        assert_eq!(encoded_text("Café_ü?"), "=?utf-8?q?Caf=C3=A9=5F=C3=BC=3F?=");
        let long = encoded_text(&"é".repeat(40));
        let words: Vec<&str> = long.split("\r\n ").collect();
        assert!(words.len() > 1 && words.iter().all(|w| w.len() <= 75 && w.starts_with("=?utf-8?q?") && w.ends_with("?=")), "{long}");
        assert_eq!(words.iter().map(|w| w.matches("=C3=A9").count()).sum::<usize>(), 40, "no character split across words");
    }

    #[tokio::test]
    async fn publishing_twice_writes_once() {
        let dir = std::env::temp_dir().join(format!("stampede-mail-{}", random_hex(4)));
        let path = dir.join("1-x.eml");
        assert!(publish(&dir, &path, "first").await.expect("first"));
        assert!(!publish(&dir, &path, "second").await.expect("second"));
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "first");
        assert_eq!(std::fs::read_dir(&dir).expect("dir").count(), 1, "no temporary files left");
    }
}
