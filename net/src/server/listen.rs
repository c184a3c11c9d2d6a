//! Listening sockets: TCP (any family, IPv4 or IPv6 only) and Unix-domain.

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};

use super::NetError;

/// Which addresses a TCP listener may use (`--listen-proto tcp|tcp4|tcp6`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TcpFamily {
    /// IPv6 and IPv4 (`tcp`).
    Any,
    /// IPv4 only (`tcp4`).
    V4,
    /// IPv6 only (`tcp6`).
    V6,
}

/// Where to listen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListenSpec {
    /// `host:port`, `:port` (all interfaces) or `[v6]:port`.
    Tcp {
        /// The address as given on the command line.
        addr: String,
        /// Address families allowed.
        family: TcpFamily,
    },
    /// Path of a Unix-domain socket; the file is removed again on exit.
    Unix(PathBuf),
}

/// A bound listening socket.
pub struct Listener {
    inner: Inner,
}

enum Inner {
    Tcp(TcpListener),
    Unix(UnixListener, PathBuf),
}

/// An accepted connection.
pub(crate) enum Accepted {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Listener {
    /// Binds `spec`. A Unix socket path left behind by a dead server is
    /// replaced; one a live server still answers on is refused.
    pub async fn bind(spec: &ListenSpec) -> Result<Listener, NetError> {
        match spec {
            ListenSpec::Tcp { addr, family } => bind_tcp(addr, *family).await,
            ListenSpec::Unix(path) => bind_unix(path),
        }
    }

    /// The bound address: `ip:port` (with the real port when 0 was asked
    /// for) or the socket path.
    pub fn local_addr(&self) -> String {
        match &self.inner {
            Inner::Tcp(l) => l
                .local_addr()
                .map(|a| a.to_string())
                .unwrap_or_else(|_| "unknown".to_string()),
            Inner::Unix(_, path) => path.display().to_string(),
        }
    }

    pub(crate) async fn accept(&self) -> io::Result<Accepted> {
        match &self.inner {
            Inner::Tcp(l) => {
                let (stream, _) = l.accept().await?;
                // Small request/response exchanges: never wait for Nagle.
                stream.set_nodelay(true)?;
                Ok(Accepted::Tcp(stream))
            }
            Inner::Unix(l, _) => Ok(Accepted::Unix(l.accept().await?.0)),
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        if let Inner::Unix(_, path) = &self.inner {
            let _ = std::fs::remove_file(path);
        }
    }
}

async fn bind_tcp(addr: &str, family: TcpFamily) -> Result<Listener, NetError> {
    let (host, port) = split_host_port(addr).ok_or_else(|| NetError::BadListen {
        addr: addr.to_string(),
        reason: "expected host:port or :port".to_string(),
    })?;
    let candidates: Vec<SocketAddr> = if host.is_empty() {
        match family {
            TcpFamily::Any => vec![SocketAddr::from(([0u16; 8], port)), SocketAddr::from(([0u8; 4], port))],
            TcpFamily::V4 => vec![SocketAddr::from(([0u8; 4], port))],
            TcpFamily::V6 => vec![SocketAddr::from(([0u16; 8], port))],
        }
    } else {
        let resolved = tokio::net::lookup_host((host, port))
            .await
            .map_err(|e| NetError::BadListen {
                addr: addr.to_string(),
                reason: e.to_string(),
            })?;
        resolved
            .filter(|a| match family {
                TcpFamily::Any => true,
                TcpFamily::V4 => a.is_ipv4(),
                TcpFamily::V6 => a.is_ipv6(),
            })
            .collect()
    };
    let mut last = None;
    for candidate in candidates {
        match TcpListener::bind(candidate).await {
            Ok(l) => return Ok(Listener { inner: Inner::Tcp(l) }),
            Err(e) => last = Some(e),
        }
    }
    Err(NetError::Bind {
        addr: addr.to_string(),
        source: last.unwrap_or_else(|| io::Error::new(io::ErrorKind::AddrNotAvailable, "no address of that family")),
    })
}

/// Splits `host:port`, `:port` and `[v6]:port`.
fn split_host_port(addr: &str) -> Option<(&str, u16)> {
    let (host, port) = addr.trim().rsplit_once(':')?;
    let host = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
    Some((host, port.parse().ok()?))
}

fn bind_unix(path: &Path) -> Result<Listener, NetError> {
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(NetError::Bind {
                addr: path.display().to_string(),
                source: io::Error::new(io::ErrorKind::AddrInUse, "a server is already listening on this socket"),
            });
        }
        std::fs::remove_file(path).map_err(|source| NetError::Bind {
            addr: path.display().to_string(),
            source,
        })?;
    }
    let l = UnixListener::bind(path).map_err(|source| NetError::Bind {
        addr: path.display().to_string(),
        source,
    })?;
    Ok(Listener {
        inner: Inner::Unix(l, path.to_path_buf()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_port_forms() {
        assert_eq!(split_host_port(":9341"), Some(("", 9341)));
        assert_eq!(split_host_port("127.0.0.1:80"), Some(("127.0.0.1", 80)));
        assert_eq!(split_host_port("[::1]:80"), Some(("::1", 80)));
        assert_eq!(split_host_port("localhost"), None);
        assert_eq!(split_host_port("h:99999"), None);
    }
}
