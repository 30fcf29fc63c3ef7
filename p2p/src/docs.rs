//! The JSON documents relays give about themselves, typed once for the relay that writes
//! them and for everyone who reads them (the `kura` client, the devnet, tests, scripts).

use serde::{Deserialize, Serialize};

/// The one line a relay prints on stdout once it listens everywhere:
/// `{"event":"ready","peer_id":…,"http":…,"listen":[…]}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ready {
    event: ReadyEvent,
    pub peer_id: String,
    /// Its HTTP address (`host:port`).
    pub http: String,
    /// Every listen address, each ending in `/p2p/PEER` (WebRTC-direct ones carry their
    /// certificate hash).
    pub listen: Vec<String>,
}

/// The only event a relay announces on stdout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum ReadyEvent {
    Ready,
}

impl Ready {
    pub fn new(peer_id: String, http: String, listen: Vec<String>) -> Self {
        Self { event: ReadyEvent::Ready, peer_id, http, listen }
    }

    /// Reads a ready line.
    pub fn parse(line: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(line)
    }

    /// The line, without its newline.
    pub fn to_line(&self) -> String {
        // A struct of strings always serializes.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// What a relay's `GET /bootstrap` answers: how to reach it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bootstrap {
    pub peer_id: String,
    /// Every listen address, each ending in `/p2p/PEER`.
    pub addrs: Vec<String>,
    /// How long the relay keeps a donating tab's announcements unless refreshed (seconds):
    /// a tab refreshes well within it. Absent from relays that predate it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tab_ttl_secs: Option<u64>,
}

/// Writes a file only its owner may read (mode 0600 on Unix), crash-safely: a temporary
/// file, synced, then renamed over `path`. For keys and tokens.
pub fn write_private(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    opts.mode(0o600);
    let mut f = opts.open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn documents_read_back_what_was_written_and_refuse_others() {
        let r = Ready::new(
            "12D3KooWP6mSwV2CZrfW7uoGzVQYGseYn4YmBan2H9Tmdpo7hSbq".into(),
            "127.0.0.1:8080".into(),
            vec!["/ip4/127.0.0.1/tcp/4001/p2p/12D3KooWP6mSwV2CZrfW7uoGzVQYGseYn4YmBan2H9Tmdpo7hSbq".into()],
        );
        let line = r.to_line();
        assert!(line.starts_with(r#"{"event":"ready","peer_id":"#), "{line}");
        assert_eq!(Ready::parse(&line).unwrap(), r);
        assert!(Ready::parse(&line.replace("\"ready\"", "\"stopped\"")).is_err());
        assert!(Ready::parse(r#"{"event":"ready","peer_id":"x"}"#).is_err(), "fields missing");
        let b: Bootstrap = serde_json::from_str(r#"{"peer_id":"p","addrs":["/ip4/1.2.3.4/tcp/1"]}"#).unwrap();
        assert_eq!(b.addrs.len(), 1);
    }
}
