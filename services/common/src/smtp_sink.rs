//! A real SMTP server for tests (feature `testkit`): a loopback listener
//! speaking the minimal dialogue lettre needs (220, EHLO/HELO, MAIL FROM,
//! RCPT TO, DATA, RSET, NOOP, QUIT; 8BITMIME advertised) that records every
//! message it accepts. It can be told to refuse the next transactions, for
//! a while (451) or for good (550), to exercise the senders' retries and
//! dead letters.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// One accepted message.
#[derive(Clone, Debug)]
pub struct Received {
    pub from: String,
    pub to: Vec<String>,
    /// The message as sent (dot-unstuffed, CRLF line ends).
    pub data: String,
}

#[derive(Default)]
struct Shared {
    messages: Mutex<Vec<Received>>,
    /// Transactions still to answer with 451.
    fail_next: AtomicU32,
    /// Answer every transaction with 550.
    refuse: AtomicBool,
}

/// The running server; it stops with the test's runtime.
#[derive(Clone)]
pub struct SmtpSink {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
}

impl SmtpSink {
    /// Listens on a free loopback port.
    pub async fn start() -> Self {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await.expect("bind the SMTP sink");
        let addr = listener.local_addr().expect("local addr");
        let shared = Arc::new(Shared::default());
        let s = shared.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(session(stream, s.clone()));
            }
        });
        Self { addr, shared }
    }

    /// `smtp://127.0.0.1:<port>` for `STAMPEDE_SMTP_URL`.
    pub fn url(&self) -> String {
        format!("smtp://{}", self.addr)
    }

    /// Every message accepted so far.
    pub fn messages(&self) -> Vec<Received> {
        self.shared.messages.lock().map(|m| m.clone()).unwrap_or_default()
    }

    /// Waits (up to ten seconds) until at least `n` messages arrived.
    pub async fn wait_for(&self, n: usize) -> Vec<Received> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let got = self.messages();
            if got.len() >= n {
                return got;
            }
            assert!(Instant::now() < deadline, "the SMTP sink got {} message(s), not {n}", got.len());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Answers the next `n` transactions with 451 (try again later).
    pub fn fail_next(&self, n: u32) {
        self.shared.fail_next.store(n, Ordering::SeqCst);
    }

    /// Answers every transaction with 550 (refused for good) while `on`.
    pub fn refuse(&self, on: bool) {
        self.shared.refuse.store(on, Ordering::SeqCst);
    }
}

fn address(arg: &str) -> String {
    let arg = arg.trim();
    match (arg.find('<'), arg.find('>')) {
        (Some(a), Some(b)) if a < b => arg[a + 1..b].to_owned(),
        _ => arg.split_whitespace().next().unwrap_or_default().to_owned(),
    }
}

async fn session(stream: TcpStream, shared: Arc<Shared>) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read);
    write.write_all(b"220 smtp-sink ESMTP\r\n").await?;
    let (mut from, mut to) = (None::<String>, Vec::new());
    let mut line = String::new();
    loop {
        line.clear();
        if lines.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let upper = line.to_ascii_uppercase();
        let reply: &[u8] = if upper.starts_with("EHLO") {
            b"250-smtp-sink\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n"
        } else if upper.starts_with("HELO") || upper.starts_with("NOOP") {
            b"250 OK\r\n"
        } else if upper.starts_with("RSET") {
            (from, to) = (None, Vec::new());
            b"250 OK\r\n"
        } else if upper.starts_with("MAIL FROM:") {
            if shared.refuse.load(Ordering::SeqCst) {
                b"550 5.7.1 refused\r\n"
            } else if shared.fail_next.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok() {
                b"451 4.3.0 try again later\r\n"
            } else {
                (from, to) = (Some(address(&line[10..])), Vec::new());
                b"250 OK\r\n"
            }
        } else if upper.starts_with("RCPT TO:") && from.is_some() {
            to.push(address(&line[8..]));
            b"250 OK\r\n"
        } else if upper.starts_with("DATA") && from.is_some() && !to.is_empty() {
            write.write_all(b"354 end with <CRLF>.<CRLF>\r\n").await?;
            let mut data = String::new();
            loop {
                line.clear();
                if lines.read_line(&mut line).await? == 0 {
                    return Ok(());
                }
                if line == ".\r\n" || line == ".\n" {
                    break;
                }
                data.push_str(line.strip_prefix('.').unwrap_or(&line));
            }
            let message = Received { from: from.take().unwrap_or_default(), to: std::mem::take(&mut to), data };
            if let Ok(mut m) = shared.messages.lock() {
                m.push(message);
            }
            b"250 OK queued\r\n"
        } else if upper.starts_with("QUIT") {
            write.write_all(b"221 bye\r\n").await?;
            return Ok(());
        } else {
            b"503 bad sequence of commands\r\n"
        };
        write.write_all(reply).await?;
    }
}
