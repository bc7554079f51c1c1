//! An SMTP sink: a real SMTP server on loopback that stores what it receives.
//!
//! It speaks enough of RFC 5321 for any ordinary client (EHLO/HELO, MAIL FROM, RCPT TO, DATA with
//! dot-unstuffing, RSET, NOOP, VRFY, QUIT), keeps every accepted message (envelope and raw data)
//! in memory and, when given a folder, writes each one there as `<n>.eml`. Its behaviour can be
//! scripted from the Rust handle or over HTTP (`PUT /_sim/behaviour`): latency before every
//! reply, refusing transactions (421/451 temporary, 550/554 permanent) for the next N messages or
//! for a while, and holding new transactions at MAIL FROM until released, which lets a test stop
//! a client at a known point of its conversation. `GET /messages` lists what arrived and
//! `GET /messages/{id}` returns one message as it was received.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::sync::watch;

/// Longest command line accepted (RFC 5321 §4.5.3.1.4 allows 512 octets; leave room for
/// extension parameters).
const MAX_LINE: u64 = 4096;
/// Largest message accepted, also advertised as `SIZE`.
const MAX_MESSAGE: usize = 10 * 1024 * 1024;
/// How long a silent client is kept before the sink hangs up (RFC 5321 suggests 5 minutes).
const IDLE_TIMEOUT: Duration = Duration::from_secs(300);

/// One message the sink accepted.
#[derive(Debug, Clone, Serialize)]
pub struct ReceivedMessage {
    /// Sequence number, from 1, in order of acceptance.
    pub id: u64,
    /// The envelope sender (`MAIL FROM`); empty for the null sender `<>`.
    pub mail_from: String,
    /// The envelope recipients (`RCPT TO`).
    pub rcpt_to: Vec<String>,
    /// The `Message-ID` header, with its angle brackets, if the message has one.
    pub message_id: Option<String>,
    pub subject: Option<String>,
    /// Milliseconds since the Unix epoch.
    pub received_at_ms: u64,
    /// The message as received after dot-unstuffing, CRLF line endings, without the final ".".
    #[serde(skip)]
    pub data: Vec<u8>,
}

impl ReceivedMessage {
    /// Value of the first header called `name` (case-insensitive), unfolded.
    pub fn header(&self, name: &str) -> Option<String> {
        header_value(&self.data, name)
    }
}

/// How the sink misbehaves.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct Behaviour {
    /// Added before every reply.
    pub latency_ms: u64,
    /// The next this many transactions are refused at `MAIL FROM` with `fail_code`.
    pub fail_next: u32,
    /// Every transaction is refused with `fail_code` for this long from when it is set.
    pub fail_for_ms: u64,
    /// Reply code of refusals: 421 (then the sink hangs up), 450, 451, 452 are temporary;
    /// 550, 551, 552, 553, 554 permanent. 451 when unset.
    pub fail_code: Option<u16>,
    /// New transactions wait at `MAIL FROM` (before the reply) while this is set.
    pub hold: bool,
}

struct Inner {
    messages: Vec<ReceivedMessage>,
    behaviour: Behaviour,
    fail_until: Option<Instant>,
    transactions: u64,
    dir: Option<PathBuf>,
}

struct Shared {
    inner: Mutex<Inner>,
    hold: watch::Sender<bool>,
    held: AtomicUsize,
    open: AtomicUsize,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().expect("smtp sink state lock")
    }

    fn set_behaviour(&self, behaviour: Behaviour) {
        let hold = behaviour.hold;
        {
            let mut s = self.lock();
            s.fail_until = (behaviour.fail_for_ms > 0)
                .then(|| Instant::now() + Duration::from_millis(behaviour.fail_for_ms));
            s.behaviour = behaviour;
        }
        self.hold.send_replace(hold);
    }
}

/// A running sink.
#[derive(Clone)]
pub struct SmtpSink {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
}

impl SmtpSink {
    /// Starts a sink on `addr` (port 0 picks a free one) in the current runtime.
    pub async fn spawn(addr: SocketAddr) -> std::io::Result<Self> {
        Self::start(addr, None).await
    }

    /// Starts a sink that also writes every accepted message to `dir` as `<id>.eml`.
    pub async fn spawn_saving_to(addr: SocketAddr, dir: PathBuf) -> std::io::Result<Self> {
        std::fs::create_dir_all(&dir)?;
        Self::start(addr, Some(dir)).await
    }

    async fn start(addr: SocketAddr, dir: Option<PathBuf>) -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            inner: Mutex::new(Inner {
                messages: Vec::new(),
                behaviour: Behaviour::default(),
                fail_until: None,
                transactions: 0,
                dir,
            }),
            hold: watch::channel(false).0,
            held: AtomicUsize::new(0),
            open: AtomicUsize::new(0),
        });
        let accepting = Arc::clone(&shared);
        tokio::spawn(async move {
            loop {
                match listener.accept().await {
                    Ok((stream, peer)) => {
                        let _ = stream.set_nodelay(true);
                        let shared = Arc::clone(&accepting);
                        tokio::spawn(async move {
                            let (read, write) = stream.into_split();
                            if let Err(e) = Session::new(&shared, read, write).run().await {
                                tracing::debug!(%peer, error = %e, "smtp session ended");
                            }
                        });
                    }
                    Err(e) => tracing::warn!(error = %e, "smtp sink accept failed"),
                }
            }
        });
        Ok(Self { addr, shared })
    }

    /// `smtp://<addr>`, the URL a client is configured with.
    pub fn url(&self) -> String {
        format!("smtp://{}", self.addr)
    }

    /// Every message accepted so far, oldest first.
    pub fn messages(&self) -> Vec<ReceivedMessage> {
        self.shared.lock().messages.clone()
    }

    pub fn behaviour(&self) -> Behaviour {
        self.shared.lock().behaviour.clone()
    }

    pub fn set_behaviour(&self, behaviour: Behaviour) {
        self.shared.set_behaviour(behaviour);
    }

    /// Refuses the next `n` transactions with `code`.
    pub fn fail_next(&self, n: u32, code: u16) {
        self.set_behaviour(Behaviour {
            fail_next: n,
            fail_code: Some(code),
            ..self.behaviour()
        });
    }

    /// Refuses every transaction with `code` for `period` from now.
    pub fn fail_for(&self, period: Duration, code: u16) {
        self.set_behaviour(Behaviour {
            fail_for_ms: u64::try_from(period.as_millis()).unwrap_or(u64::MAX),
            fail_code: Some(code),
            ..self.behaviour()
        });
    }

    /// Makes new transactions wait at `MAIL FROM` until `release`.
    pub fn hold(&self) {
        self.set_behaviour(Behaviour {
            hold: true,
            ..self.behaviour()
        });
    }

    pub fn release(&self) {
        self.set_behaviour(Behaviour {
            hold: false,
            ..self.behaviour()
        });
    }

    /// Sessions waiting at `MAIL FROM` because of `hold`.
    pub fn held(&self) -> usize {
        self.shared.held.load(Ordering::SeqCst)
    }

    /// Transactions between an accepted `MAIL FROM` and the end of their `DATA` (or their
    /// abandonment): messages that may still arrive without another `MAIL FROM`.
    pub fn open_transactions(&self) -> usize {
        self.shared.open.load(Ordering::SeqCst)
    }

    /// `MAIL FROM` commands received so far, accepted or refused: the delivery attempts.
    pub fn transactions(&self) -> u64 {
        self.shared.lock().transactions
    }

    /// Serves the HTTP listing and scripting API on `addr`; returns the bound address.
    pub async fn serve_http(&self, addr: SocketAddr) -> std::io::Result<SocketAddr> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let bound = listener.local_addr()?;
        let app = Router::new()
            .route("/messages", get(list_messages))
            .route("/messages/{id}", get(read_message))
            .route("/_sim/behaviour", put(put_behaviour).get(get_behaviour))
            .with_state(Arc::clone(&self.shared));
        tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!(error = %e, "smtp sink HTTP API stopped");
            }
        });
        Ok(bound)
    }
}

/// `GET /messages[?message_id=<id>]`: every message, or those with one Message-ID, as a mail
/// provider's message search answers.
#[derive(Debug, Deserialize)]
struct MessageQuery {
    message_id: Option<String>,
}

async fn list_messages(
    State(shared): State<Arc<Shared>>,
    Query(query): Query<MessageQuery>,
) -> Json<Vec<ReceivedMessage>> {
    let messages = &shared.lock().messages;
    Json(match &query.message_id {
        Some(id) => messages
            .iter()
            .filter(|m| m.message_id.as_ref() == Some(id))
            .cloned()
            .collect(),
        None => messages.clone(),
    })
}

async fn read_message(State(shared): State<Arc<Shared>>, Path(id): Path<u64>) -> Response {
    match shared.lock().messages.iter().find(|m| m.id == id) {
        Some(m) => ([(header::CONTENT_TYPE, "message/rfc822")], m.data.clone()).into_response(),
        None => (StatusCode::NOT_FOUND, format!("no message {id}")).into_response(),
    }
}

async fn get_behaviour(State(shared): State<Arc<Shared>>) -> Json<Behaviour> {
    Json(shared.lock().behaviour.clone())
}

async fn put_behaviour(State(shared): State<Arc<Shared>>, Json(b): Json<Behaviour>) -> StatusCode {
    shared.set_behaviour(b);
    StatusCode::NO_CONTENT
}

/// What a command line asks for.
enum Line {
    Text(String),
    TooLong,
    Closed,
}

/// One client connection.
struct Session<'a, R, W> {
    shared: &'a Shared,
    reader: BufReader<R>,
    writer: W,
    greeted: bool,
    mail_from: Option<String>,
    open: Option<OpenTransaction<'a>>,
    rcpt_to: Vec<String>,
}

/// Counts a transaction as open from its accepted `MAIL FROM` until it ends, however it ends.
struct OpenTransaction<'a>(&'a AtomicUsize);

impl<'a> OpenTransaction<'a> {
    fn new(count: &'a AtomicUsize) -> Self {
        count.fetch_add(1, Ordering::SeqCst);
        Self(count)
    }
}

impl Drop for OpenTransaction<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl<'a, R: AsyncRead + Unpin, W: AsyncWrite + Unpin> Session<'a, R, W> {
    fn new(shared: &'a Shared, read: R, write: W) -> Self {
        Self {
            shared,
            reader: BufReader::new(read),
            writer: write,
            greeted: false,
            mail_from: None,
            open: None,
            rcpt_to: Vec::new(),
        }
    }

    async fn run(mut self) -> std::io::Result<()> {
        self.reply("220 smtp-sink ESMTP ready").await?;
        loop {
            let line = match tokio::time::timeout(IDLE_TIMEOUT, self.read_line()).await {
                Ok(line) => line?,
                Err(_) => {
                    return self
                        .reply("421 4.4.2 smtp-sink idle too long, closing connection")
                        .await
                }
            };
            let line = match line {
                Line::Closed => return Ok(()),
                Line::TooLong => {
                    self.reply("500 5.5.2 line too long").await?;
                    continue;
                }
                Line::Text(line) => line,
            };
            let (verb, arg) = match line.split_once(' ') {
                Some((v, a)) => (v.to_ascii_uppercase(), a.trim()),
                None => (line.to_ascii_uppercase(), ""),
            };
            match verb.as_str() {
                "EHLO" => {
                    self.reset();
                    self.greeted = true;
                    let reply = format!(
                        "250-smtp-sink greets {arg}\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250 SIZE {MAX_MESSAGE}"
                    );
                    self.reply(&reply).await?;
                }
                "HELO" => {
                    self.reset();
                    self.greeted = true;
                    self.reply("250 smtp-sink").await?;
                }
                "MAIL" => {
                    if !self.mail(arg).await? {
                        return Ok(());
                    }
                }
                "RCPT" => self.rcpt(arg).await?,
                "DATA" => {
                    if !self.data().await? {
                        return Ok(());
                    }
                }
                "RSET" => {
                    self.reset();
                    self.reply("250 2.0.0 OK").await?;
                }
                "NOOP" => self.reply("250 2.0.0 OK").await?,
                "VRFY" => self.reply("252 2.1.5 cannot verify, will accept").await?,
                "QUIT" => {
                    self.reply("221 2.0.0 smtp-sink closing connection").await?;
                    return Ok(());
                }
                _ => self.reply("500 5.5.1 command not recognized").await?,
            }
        }
    }

    fn reset(&mut self) {
        self.mail_from = None;
        self.open = None;
        self.rcpt_to.clear();
    }

    /// Handles `MAIL FROM`; returns false when the session must end (a 421 refusal).
    async fn mail(&mut self, arg: &str) -> std::io::Result<bool> {
        if !self.greeted {
            self.reply("503 5.5.1 say EHLO first").await?;
            return Ok(true);
        }
        if self.mail_from.is_some() {
            self.reply("503 5.5.1 nested MAIL command").await?;
            return Ok(true);
        }
        let Some(address) = path_argument(arg, "FROM:") else {
            self.reply("501 5.5.4 syntax: MAIL FROM:<address>").await?;
            return Ok(true);
        };
        let mut hold = self.shared.hold.subscribe();
        if *hold.borrow_and_update() {
            self.shared.held.fetch_add(1, Ordering::SeqCst);
            let released = hold.wait_for(|held| !*held).await.map(|_| ());
            self.shared.held.fetch_sub(1, Ordering::SeqCst);
            if released.is_err() {
                return Ok(false);
            }
        }
        let refusal = {
            let mut s = self.shared.lock();
            s.transactions += 1;
            let code = s.behaviour.fail_code.unwrap_or(451);
            if s.behaviour.fail_next > 0 {
                s.behaviour.fail_next -= 1;
                Some(code)
            } else if s.fail_until.is_some_and(|until| Instant::now() < until) {
                Some(code)
            } else {
                None
            }
        };
        if let Some(code) = refusal {
            self.reply(&refusal_reply(code)).await?;
            return Ok(code != 421);
        }
        self.mail_from = Some(address);
        self.open = Some(OpenTransaction::new(&self.shared.open));
        self.reply("250 2.1.0 OK").await?;
        Ok(true)
    }

    async fn rcpt(&mut self, arg: &str) -> std::io::Result<()> {
        if self.mail_from.is_none() {
            return self.reply("503 5.5.1 need MAIL before RCPT").await;
        }
        match path_argument(arg, "TO:") {
            Some(address) if !address.is_empty() => {
                self.rcpt_to.push(address);
                self.reply("250 2.1.5 OK").await
            }
            _ => self.reply("501 5.5.4 syntax: RCPT TO:<address>").await,
        }
    }

    /// Handles `DATA`; returns false when the client went away mid-message, which discards it.
    async fn data(&mut self) -> std::io::Result<bool> {
        if self.mail_from.is_none() || self.rcpt_to.is_empty() {
            self.reply("503 5.5.1 need MAIL and RCPT before DATA")
                .await?;
            return Ok(true);
        }
        self.reply("354 end data with <CR><LF>.<CR><LF>").await?;
        let mut data = Vec::new();
        let mut too_big = false;
        loop {
            let mut line = Vec::new();
            if self.reader.read_until(b'\n', &mut line).await? == 0 {
                return Ok(false);
            }
            if line == b".\r\n" || line == b".\n" {
                break;
            }
            let line = line.strip_prefix(b".").unwrap_or(&line);
            if data.len() + line.len() > MAX_MESSAGE {
                too_big = true;
            } else {
                data.extend_from_slice(line);
            }
        }
        let mail_from = self.mail_from.take().unwrap_or_default();
        let rcpt_to = std::mem::take(&mut self.rcpt_to);
        if too_big {
            self.open = None;
            self.reply("552 5.3.4 message too big").await?;
            return Ok(true);
        }
        let id = self.store(mail_from, rcpt_to, data)?;
        // Stored first, closed second: whoever sees the transaction closed sees its message.
        self.open = None;
        self.reply(&format!("250 2.0.0 OK queued as {id}")).await?;
        Ok(true)
    }

    /// Keeps a message (and writes it to the folder, if any) before it is acknowledged, so a
    /// 250 always means the message is stored.
    fn store(
        &self,
        mail_from: String,
        rcpt_to: Vec<String>,
        data: Vec<u8>,
    ) -> std::io::Result<u64> {
        let mut s = self.shared.lock();
        let id = s.messages.len() as u64 + 1;
        if let Some(dir) = &s.dir {
            std::fs::write(dir.join(format!("{id:06}.eml")), &data)?;
        }
        let received_at_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
            .unwrap_or(0);
        s.messages.push(ReceivedMessage {
            id,
            message_id: header_value(&data, "Message-ID"),
            subject: header_value(&data, "Subject"),
            mail_from,
            rcpt_to,
            received_at_ms,
            data,
        });
        tracing::info!(id, "smtp sink accepted a message");
        Ok(id)
    }

    async fn read_line(&mut self) -> std::io::Result<Line> {
        let mut line = Vec::new();
        let n = (&mut self.reader)
            .take(MAX_LINE)
            .read_until(b'\n', &mut line)
            .await?;
        if n == 0 {
            return Ok(Line::Closed);
        }
        if !line.ends_with(b"\n") {
            if n as u64 == MAX_LINE {
                // Skip the rest of the oversized line so the next command is read cleanly.
                let mut rest = Vec::new();
                self.reader.read_until(b'\n', &mut rest).await?;
                return Ok(Line::TooLong);
            }
            return Ok(Line::Closed);
        }
        let text = String::from_utf8_lossy(&line);
        Ok(Line::Text(text.trim_end_matches(['\r', '\n']).to_string()))
    }

    async fn reply(&mut self, text: &str) -> std::io::Result<()> {
        let latency = self.shared.lock().behaviour.latency_ms;
        if latency > 0 {
            tokio::time::sleep(Duration::from_millis(latency)).await;
        }
        // One write per reply: a reply split in two waits for the client's delayed ACK (Nagle).
        self.writer
            .write_all(format!("{text}\r\n").as_bytes())
            .await?;
        self.writer.flush().await
    }
}

/// The address in `FROM:<a@b> PARAMS` or `TO:<a@b>`, without brackets; `None` when malformed.
fn path_argument(arg: &str, keyword: &str) -> Option<String> {
    let head = arg.get(..keyword.len())?;
    if !head.eq_ignore_ascii_case(keyword) {
        return None;
    }
    let rest = arg[keyword.len()..].trim_start();
    let inner = rest.strip_prefix('<')?;
    let end = inner.find('>')?;
    Some(inner[..end].to_string())
}

fn refusal_reply(code: u16) -> String {
    let text = match code {
        421 => "4.3.2 service not available, closing transmission channel",
        450 => "4.2.1 mailbox unavailable, try again later",
        451 => "4.3.0 local error in processing, try again later",
        452 => "4.3.1 insufficient system storage",
        550 => "5.1.1 mailbox unavailable",
        551 => "5.1.6 user not local",
        552 => "5.3.4 exceeded storage allocation",
        553 => "5.1.3 mailbox name not allowed",
        554 => "5.7.1 transaction failed",
        _ => "scripted failure",
    };
    format!("{code} {text}")
}

/// The first header called `name` in a raw message's header section, unfolded.
fn header_value(data: &[u8], name: &str) -> Option<String> {
    let text = String::from_utf8_lossy(data);
    let mut found: Option<String> = None;
    for line in text.split("\r\n").flat_map(|l| l.split('\n')) {
        if line.is_empty() {
            break;
        }
        if line.starts_with([' ', '\t']) {
            if let Some(value) = found.as_mut() {
                value.push(' ');
                value.push_str(line.trim());
            }
            continue;
        }
        if found.is_some() {
            break;
        }
        if let Some((key, value)) = line.split_once(':') {
            if key.trim().eq_ignore_ascii_case(name) {
                found = Some(value.trim().to_string());
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_read_with_or_without_parameters() {
        assert_eq!(
            path_argument("FROM:<a@b.c> BODY=8BITMIME", "FROM:"),
            Some("a@b.c".into())
        );
        assert_eq!(
            path_argument("from: <a@b.c>", "FROM:"),
            Some("a@b.c".into())
        );
        assert_eq!(path_argument("FROM:<>", "FROM:"), Some(String::new()));
        assert_eq!(path_argument("FROM:a@b.c", "FROM:"), None);
        assert_eq!(path_argument("TO:<a@b.c>", "FROM:"), None);
    }

    /// One reply; multi-line replies ("250-...") end with a line whose code is followed by a
    /// space.
    async fn reply<R: AsyncRead + Unpin>(read: &mut BufReader<R>) -> String {
        loop {
            let mut line = String::new();
            read.read_line(&mut line).await.unwrap();
            if line.len() < 4 || line.as_bytes()[3] != b'-' {
                return line.trim_end().to_string();
            }
        }
    }

    /// Sends `lines` one by one and returns the reply to each.
    async fn converse(sink: &SmtpSink, lines: &[&str]) -> Vec<String> {
        let stream = tokio::net::TcpStream::connect(sink.addr).await.unwrap();
        let (read, mut write) = stream.into_split();
        let mut read = BufReader::new(read);
        let mut replies = vec![reply(&mut read).await];
        let mut in_data = false;
        for l in lines {
            write
                .write_all(format!("{l}\r\n").as_bytes())
                .await
                .unwrap();
            // Lines inside DATA get no reply of their own.
            if in_data && *l != "." {
                continue;
            }
            let r = reply(&mut read).await;
            in_data = r.starts_with("354");
            replies.push(r);
        }
        replies
    }

    #[tokio::test]
    async fn a_conversation_is_stored_with_dots_unstuffed_and_resets_honoured() {
        let sink = SmtpSink::spawn(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .unwrap();
        let replies = converse(
            &sink,
            &[
                "MAIL FROM:<early@x>",
                "EHLO client",
                "MAIL FROM:<dropped@x>",
                "RSET",
                "DATA",
                "MAIL FROM:<a@x> BODY=8BITMIME",
                "RCPT TO:<b@y>",
                "RCPT TO:<c@y>",
                "NOOP",
                "DATA",
                "Message-ID: <m1@x>",
                "Subject: hi",
                "",
                "..leading dot",
                ".",
                "QUIT",
            ],
        )
        .await;
        let codes: Vec<&str> = replies.iter().map(|r| &r[..3]).collect();
        assert_eq!(
            codes,
            [
                "220", "503", "250", "250", "250", "503", "250", "250", "250", "250", "354", "250",
                "221"
            ]
        );
        let messages = sink.messages();
        assert_eq!(messages.len(), 1);
        let m = &messages[0];
        assert_eq!(
            (m.mail_from.as_str(), m.rcpt_to.clone()),
            ("a@x", vec!["b@y".to_string(), "c@y".to_string()])
        );
        assert_eq!(m.message_id.as_deref(), Some("<m1@x>"));
        assert_eq!(
            m.data,
            b"Message-ID: <m1@x>\r\nSubject: hi\r\n\r\n.leading dot\r\n"
        );
        assert_eq!(sink.open_transactions(), 0);
    }

    #[tokio::test]
    async fn scripted_refusals_come_at_mail_from_and_421_hangs_up() {
        let sink = SmtpSink::spawn(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .unwrap();
        sink.fail_next(1, 550);
        let replies = converse(&sink, &["HELO c", "MAIL FROM:<a@x>", "MAIL FROM:<a@x>"]).await;
        assert_eq!(replies[2], "550 5.1.1 mailbox unavailable");
        assert!(replies[3].starts_with("250"));
        sink.fail_next(1, 421);
        let stream = tokio::net::TcpStream::connect(sink.addr).await.unwrap();
        let (read, mut write) = stream.into_split();
        let mut read = BufReader::new(read);
        write
            .write_all(b"HELO c\r\nMAIL FROM:<a@x>\r\n")
            .await
            .unwrap();
        let mut all = String::new();
        read.read_to_string(&mut all).await.unwrap();
        assert!(
            all.ends_with("421 4.3.2 service not available, closing transmission channel\r\n"),
            "{all}"
        );
        assert_eq!(sink.transactions(), 3);
    }

    #[test]
    fn headers_are_unfolded_and_the_body_is_not_searched() {
        let data = b"Subject: a long\r\n subject\r\nMessage-ID: <x@y>\r\n\r\nSubject: body\r\n";
        assert_eq!(header_value(data, "subject"), Some("a long subject".into()));
        assert_eq!(header_value(data, "Message-ID"), Some("<x@y>".into()));
        assert_eq!(header_value(b"From: a\r\n\r\nTo: b\r\n", "To"), None);
    }
}
