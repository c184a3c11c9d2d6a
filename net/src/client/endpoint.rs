//! Server base URLs: parsing, and turning an API path into a request URI.
//!
//! `http://` and `https://` URLs go to the pooled TCP connector as they are.
//! A `unix:///path/to/socket` URL is rewritten to a `unix://<hex path>/…`
//! request URI: the connector decodes the socket path from the authority,
//! and since the pool is keyed by authority, every socket gets its own pool.

use std::fmt;
use std::path::PathBuf;

use http::Uri;

use super::error::ClientError;

/// Scheme of the internal request URIs that target a Unix socket.
pub(crate) const UNIX_SCHEME: &str = "unix";

/// One server the client may talk to.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Endpoint {
    target: Target,
    /// Path prefix under which the API lives (no trailing slash; usually empty).
    prefix: String,
    /// The URL as the caller wrote it, for messages.
    display: String,
}

#[derive(Clone, PartialEq, Eq, Debug)]
enum Target {
    Tcp { tls: bool, authority: String },
    Unix { hex_path: String },
}

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.display)
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.display)
    }
}

impl Endpoint {
    /// Parses `http://host:port[/prefix]`, `https://host:port[/prefix]` or
    /// `unix:///path/to/socket`.
    pub(crate) fn parse(url: &str) -> Result<Endpoint, ClientError> {
        let url = url.trim();
        if url.is_empty() {
            return Err(ClientError::InvalidUrl("empty server URL".to_owned()));
        }
        if let Some(rest) = strip_prefix_ignore_case(url, "unix://") {
            if rest.is_empty() {
                return Err(invalid(
                    url,
                    "a unix:// URL needs a socket path, e.g. unix:///run/lockd.sock",
                ));
            }
            return Ok(Endpoint {
                target: Target::Unix {
                    hex_path: hex_encode(rest.as_bytes()),
                },
                prefix: String::new(),
                display: url.to_owned(),
            });
        }
        let uri: Uri = url.parse().map_err(|e| invalid(url, &format!("{e}")))?;
        let tls = match uri.scheme_str().map(str::to_ascii_lowercase).as_deref() {
            Some("http") => false,
            Some("https") => true,
            Some(other) => {
                return Err(invalid(
                    url,
                    &format!("unsupported scheme {other:?} (use http, https or unix)"),
                ));
            }
            None => return Err(invalid(url, "missing scheme (use http://, https:// or unix://)")),
        };
        let authority = uri.authority().ok_or_else(|| invalid(url, "missing host"))?;
        if authority.host().is_empty() {
            return Err(invalid(url, "missing host"));
        }
        if authority.as_str().contains('@') {
            return Err(invalid(url, "credentials in the URL are not supported"));
        }
        if uri.query().is_some() {
            return Err(invalid(url, "a server URL cannot carry a query string"));
        }
        Ok(Endpoint {
            target: Target::Tcp {
                tls,
                authority: authority.as_str().to_owned(),
            },
            prefix: uri.path().trim_end_matches('/').to_owned(),
            display: url.to_owned(),
        })
    }

    /// Whether this endpoint is a Unix-domain socket.
    pub(crate) fn is_unix(&self) -> bool {
        matches!(self.target, Target::Unix { .. })
    }

    /// The request URI for `path` (starting with `/`) and an already
    /// encoded query string (empty for none).
    pub(crate) fn uri(&self, path: &str, query: &str) -> Result<Uri, ClientError> {
        let sep = if query.is_empty() { "" } else { "?" };
        let text = match &self.target {
            Target::Tcp { tls, authority } => {
                let scheme = if *tls { "https" } else { "http" };
                format!("{scheme}://{authority}{}{path}{sep}{query}", self.prefix)
            }
            Target::Unix { hex_path } => format!("{UNIX_SCHEME}://{hex_path}{path}{sep}{query}"),
        };
        text.parse()
            .map_err(|e| ClientError::InvalidUrl(format!("{}: cannot build request URI: {e}", self.display)))
    }
}

/// Recovers the socket path from the authority of a `unix://` request URI.
pub(crate) fn unix_socket_path(uri: &Uri) -> Option<PathBuf> {
    let host = uri.host()?;
    let bytes = hex_decode(host)?;
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStringExt;
        Some(PathBuf::from(std::ffi::OsString::from_vec(bytes)))
    }
    #[cfg(not(unix))]
    {
        String::from_utf8(bytes).ok().map(PathBuf::from)
    }
}

/// Builds a query string, percent-encoding every value (and name) so that
/// keys and namespaces with reserved characters reach the server intact.
pub(crate) fn query(pairs: &[(&str, &str)]) -> String {
    let mut out = String::new();
    for (name, value) in pairs {
        if !out.is_empty() {
            out.push('&');
        }
        percent_encode_into(name, &mut out);
        out.push('=');
        percent_encode_into(value, &mut out);
    }
    out
}

fn percent_encode_into(text: &str, out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in text.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0x0f)]));
        }
    }
}

fn invalid(url: &str, why: &str) -> ClientError {
    ClientError::InvalidUrl(format!("{url:?}: {why}"))
}

fn strip_prefix_ignore_case<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let head = text.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix).then(|| &text[prefix.len()..])
}

fn hex_encode(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 0x0f)]));
    }
    out
}

fn hex_decode(text: &str) -> Option<Vec<u8>> {
    let digits = text.as_bytes();
    if !digits.len().is_multiple_of(2) {
        return None;
    }
    let nibble = |c: u8| char::from(c).to_digit(16).and_then(|d| u8::try_from(d).ok());
    digits
        .chunks_exact(2)
        .map(|pair| Some((nibble(pair[0])? << 4) | nibble(pair[1])?))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_and_https_urls_parse() {
        let ep = Endpoint::parse("http://127.0.0.1:9341").expect("test setup");
        assert!(!ep.is_unix());
        assert_eq!(
            ep.uri("/v1/acquire", "").expect("test setup").to_string(),
            "http://127.0.0.1:9341/v1/acquire"
        );
        let ep = Endpoint::parse(" HTTPS://lockd.example:443/ ").expect("test setup");
        assert_eq!(
            ep.uri("/healthz", "").expect("test setup").to_string(),
            "https://lockd.example:443/healthz"
        );
    }

    #[test]
    fn path_prefix_is_kept() {
        let ep = Endpoint::parse("http://h:1/lockd/").expect("test setup");
        assert_eq!(
            ep.uri("/v1/get", "key=a").expect("test setup").to_string(),
            "http://h:1/lockd/v1/get?key=a"
        );
    }

    #[test]
    fn unix_urls_round_trip_the_socket_path() {
        let ep = Endpoint::parse("unix:///tmp/lockd test/sock").expect("test setup");
        assert!(ep.is_unix());
        let uri = ep.uri("/v1/describe", "key=k").expect("test setup");
        assert_eq!(uri.scheme_str(), Some(UNIX_SCHEME));
        assert_eq!(uri.path(), "/v1/describe");
        assert_eq!(
            unix_socket_path(&uri).expect("test setup"),
            PathBuf::from("/tmp/lockd test/sock")
        );
    }

    #[test]
    fn bad_urls_are_rejected_with_reasons() {
        let cases = [
            ("", "empty"),
            ("127.0.0.1:9341", "scheme"),
            ("ftp://h:1", "unsupported scheme"),
            ("unix://", "socket path"),
            ("http://h:1/?a=b", "query"),
            ("http://user:pw@h:1", "credentials"),
            ("http://", "http://"),
        ];
        for (url, needle) in cases {
            match Endpoint::parse(url) {
                Err(ClientError::InvalidUrl(msg)) => assert!(msg.contains(needle), "{url}: {msg}"),
                other => panic!("{url}: expected InvalidUrl, got {other:?}"),
            }
        }
    }

    #[test]
    fn query_values_are_percent_encoded() {
        assert_eq!(
            query(&[("key", "a/b c&d=é"), ("namespace", "ns")]),
            "key=a%2Fb%20c%26d%3D%C3%A9&namespace=ns"
        );
        assert_eq!(query(&[]), "");
    }

    #[test]
    fn hex_decode_rejects_garbage() {
        assert_eq!(hex_decode("2f"), Some(vec![b'/']));
        assert_eq!(hex_decode("2"), None);
        assert_eq!(hex_decode("zz"), None);
    }
}
