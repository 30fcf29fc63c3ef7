//! Bootstrap addresses from the command line: multiaddrs as they are, or the `http://` URL
//! of a relay (its `/bootstrap` document lists the relay's peer id and addresses).

use crate::net::NetError;
use libp2p::Multiaddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A plain HTTP/1.1 `GET` (no TLS: relays serve their page and documents on plain HTTP;
/// put a TLS proxy in front for the public web). Returns (status, body).
pub async fn http_get(url: &str) -> Result<(u16, String), String> {
    let rest = url.strip_prefix("http://").ok_or("only http:// URLs are supported")?;
    let (host, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let fetch = async {
        let mut s =
            tokio::net::TcpStream::connect(host).await.map_err(|e| format!("connecting to {host}: {e}"))?;
        let req = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
        s.write_all(req.as_bytes()).await.map_err(|e| e.to_string())?;
        let mut buf = Vec::new();
        s.take(1 << 20).read_to_end(&mut buf).await.map_err(|e| e.to_string())?;
        let text = String::from_utf8_lossy(&buf).into_owned();
        let (head, body) = text.split_once("\r\n\r\n").ok_or("no HTTP header in the answer")?;
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| format!("bad HTTP status line {:?}", head.lines().next()))?;
        if head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
            return Err("chunked HTTP answers are not supported".to_owned());
        }
        Ok((status, body.to_owned()))
    };
    tokio::time::timeout(Duration::from_secs(10), fetch)
        .await
        .map_err(|_| format!("{url}: no answer in 10 s"))?
}

/// Turns each argument into multiaddrs: a multiaddr is taken as it is; an `http://` URL is
/// fetched (`/bootstrap` when it has no path) and every address it lists is used.
pub async fn resolve(args: &[String]) -> Result<Vec<Multiaddr>, NetError> {
    let mut out = Vec::new();
    for arg in args {
        let bad = |reason: String| NetError::BadBootstrap { addr: arg.clone(), reason };
        if let Some(rest) = arg.strip_prefix("http://") {
            // A relay's page URL (no path, or "/") means its bootstrap document.
            let has_path = rest.trim_end_matches('/').contains('/');
            let url = if has_path { arg.clone() } else { format!("{}/bootstrap", arg.trim_end_matches('/')) };
            let (status, body) =
                http_get(&url).await.map_err(|e| NetError::Unreachable(format!("{url}: {e}")))?;
            if status != 200 {
                return Err(bad(format!("{url} answered HTTP {status}")));
            }
            let doc: kura_p2p::docs::Bootstrap = serde_json::from_str(&body)
                .map_err(|e| bad(format!("{url} is not a bootstrap document: {e}")))?;
            for a in &doc.addrs {
                out.push(a.parse().map_err(|e| bad(format!("{url} lists {a:?}: {e}")))?);
            }
        } else {
            out.push(arg.parse().map_err(|e| bad(format!("not a multiaddr: {e}")))?);
        }
    }
    if out.is_empty() {
        return Err(NetError::Unreachable("no bootstrap address given (--bootstrap)".into()));
    }
    Ok(out)
}
