//! Who a request comes from: the socket's peer, or — when that peer is a reverse proxy the
//! operator trusts (`--trusted-proxies`) — the client the proxies name in their forwarding
//! headers (RFC 7239 `Forwarded`, else the de-facto `X-Forwarded-For` and
//! `X-Forwarded-Proto`).
//!
//! The headers are read from the right: each proxy appends the address it received the
//! request from, so the rightmost address that is not itself a trusted proxy is the client.
//! Everything left of it was written by the client and is not believed. A request whose peer
//! is not trusted is taken at its socket's word, whatever headers it carries, so nobody can
//! choose their own address for the login limiter or the logs.

use std::net::{IpAddr, SocketAddr};

use actix_web::{http::header::HeaderMap, HttpRequest};
use ipnet::IpNet;

/// `X-Forwarded-For` (the de-facto header; `Forwarded` is its standard successor).
const X_FORWARDED_FOR: &str = "x-forwarded-for";
/// `X-Forwarded-Proto`: the scheme the client used with the outermost proxy (one value,
/// set by that proxy; a list's first value).
const X_FORWARDED_PROTO: &str = "x-forwarded-proto";

/// Parses one `--trusted-proxies` entry: an address (`10.0.0.1`, `::1`) or a CIDR block
/// (`10.0.0.0/8`).
pub fn parse_proxy(entry: &str) -> Result<IpNet, String> {
    let entry = entry.trim();
    entry
        .parse::<IpNet>()
        .or_else(|_| entry.parse::<IpAddr>().map(IpNet::from))
        .map_err(|_| format!("'{entry}' is neither an IP address nor a CIDR block"))
}

/// The client behind a request, as far as the trusted proxies tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Client {
    /// Its address (`None` only where the connection has no peer address, as in unit tests).
    pub ip: Option<IpAddr>,
    /// Whether it reached the service over HTTPS (at the outermost trusted proxy, or here).
    pub https: bool,
}

/// The client of `req` (see the module doc).
pub fn client(req: &HttpRequest, trusted: &[IpNet]) -> Client {
    let https = req.app_config().secure();
    let peer = req.peer_addr().map(|a| a.ip().to_canonical());
    match peer {
        Some(peer) if is_trusted(peer, trusted) => {
            behind_proxies(req.headers(), peer, trusted, https)
        }
        _ => Client { ip: peer, https },
    }
}

/// The client's address as a string for logs and limiter keys (`-` when unknown).
pub(crate) fn client_ip_string(req: &HttpRequest, trusted: &[IpNet]) -> String {
    client(req, trusted)
        .ip
        .map_or_else(|| "-".to_owned(), |ip| ip.to_string())
}

fn is_trusted(ip: IpAddr, trusted: &[IpNet]) -> bool {
    trusted.iter().any(|net| net.contains(&ip))
}

/// One hop a proxy recorded: the address it received the request from (`None`: obfuscated,
/// `unknown` or unreadable), and the scheme it was received over, when said.
struct Hop {
    ip: Option<IpAddr>,
    proto: Option<String>,
}

/// Reads the hops right to left, from `peer` (a trusted proxy) outwards, and stops at the
/// first address that is not trusted: that is the client. A hop that cannot be read stops
/// the walk too, and the last trusted proxy is then the client's best known address (never
/// an address the client could have written). The scheme is the one the hop that named the
/// client recorded (`Forwarded: proto=`), else `X-Forwarded-Proto`, else this connection's.
fn behind_proxies(headers: &HeaderMap, peer: IpAddr, trusted: &[IpNet], https: bool) -> Client {
    let hops = forwarded_hops(headers).unwrap_or_else(|| x_forwarded_hops(headers));
    let mut ip = peer;
    let mut proto = None;
    for hop in hops.iter().rev() {
        let Some(hop_ip) = hop.ip else { break };
        ip = hop_ip;
        proto = hop.proto.as_deref();
        if !is_trusted(hop_ip, trusted) {
            break;
        }
    }
    let proto = proto.or_else(|| {
        headers
            .get(X_FORWARDED_PROTO)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
    });
    Client {
        ip: Some(ip),
        https: proto.map_or(https, |p| p.trim().eq_ignore_ascii_case("https")),
    }
}

/// The hops of every `Forwarded` header line, in order; `None` when there is none.
fn forwarded_hops(headers: &HeaderMap) -> Option<Vec<Hop>> {
    let mut lines = headers
        .get_all(actix_web::http::header::FORWARDED)
        .peekable();
    lines.peek()?;
    let mut hops = Vec::new();
    for line in lines {
        let Ok(line) = line.to_str() else {
            hops.push(Hop {
                ip: None,
                proto: None,
            });
            continue;
        };
        for element in line.split(',') {
            let mut hop = Hop {
                ip: None,
                proto: None,
            };
            for pair in element.split(';') {
                let Some((key, value)) = pair.split_once('=') else {
                    continue;
                };
                let value = value.trim().trim_matches('"');
                match key.trim().to_ascii_lowercase().as_str() {
                    "for" => hop.ip = node_address(value),
                    "proto" => hop.proto = Some(value.to_owned()),
                    _ => {}
                }
            }
            hops.push(hop);
        }
    }
    Some(hops)
}

/// The hops of `X-Forwarded-For`, in order (it names no scheme per hop).
fn x_forwarded_hops(headers: &HeaderMap) -> Vec<Hop> {
    headers
        .get_all(X_FORWARDED_FOR)
        .flat_map(|line| {
            line.to_str()
                .map_or_else(|_| vec![None], |l| l.split(',').map(node_address).collect())
        })
        .map(|ip| Hop { ip, proto: None })
        .collect()
}

/// An address as proxies write it: `192.0.2.1`, `192.0.2.1:4711`, `2001:db8::1`,
/// `[2001:db8::1]` or `[2001:db8::1]:4711`. Anything else (`unknown`, `_hidden`): `None`.
fn node_address(text: &str) -> Option<IpAddr> {
    let text = text.trim();
    text.parse::<IpAddr>()
        .ok()
        .or_else(|| text.parse::<SocketAddr>().ok().map(|a| a.ip()))
        .or_else(|| {
            text.strip_prefix('[')
                .and_then(|t| t.strip_suffix(']'))
                .and_then(|t| t.parse().ok())
        })
        .map(|ip: IpAddr| ip.to_canonical())
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    fn nets(list: &str) -> Vec<IpNet> {
        list.split(',').map(|e| parse_proxy(e).unwrap()).collect()
    }

    fn from(peer: &str, headers: &[(&str, &str)], trusted: &str) -> Client {
        let mut req = TestRequest::default().peer_addr(peer.parse().unwrap());
        for (name, value) in headers {
            req = req.append_header((*name, *value));
        }
        client(&req.to_http_request(), &nets(trusted))
    }

    fn ip(text: &str) -> Option<IpAddr> {
        Some(text.parse().unwrap())
    }

    #[test]
    fn proxies_are_addresses_or_cidr_blocks_and_anything_else_is_refused_by_name() {
        assert!(parse_proxy("10.0.0.1")
            .unwrap()
            .contains(&"10.0.0.1".parse::<IpAddr>().unwrap()));
        assert!(parse_proxy(" 10.0.0.0/8 ")
            .unwrap()
            .contains(&"10.9.9.9".parse::<IpAddr>().unwrap()));
        assert!(parse_proxy("::1")
            .unwrap()
            .contains(&"::1".parse::<IpAddr>().unwrap()));
        let err = parse_proxy("proxy.example").unwrap_err();
        assert!(err.contains("proxy.example"), "{err}");
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_headers_it_sends() {
        let c = from(
            "203.0.113.9:5000",
            &[
                ("X-Forwarded-For", "1.2.3.4"),
                ("Forwarded", "for=1.2.3.4;proto=https"),
            ],
            "10.0.0.0/8",
        );
        assert_eq!(
            c,
            Client {
                ip: ip("203.0.113.9"),
                https: false
            }
        );
    }

    #[test]
    fn behind_a_trusted_proxy_the_rightmost_untrusted_address_is_the_client() {
        // The client wrote "6.6.6.6" itself; the proxy appended the address it saw.
        let c = from(
            "10.0.0.2:5000",
            &[
                ("X-Forwarded-For", "6.6.6.6, 198.51.100.7"),
                ("X-Forwarded-Proto", "https"),
            ],
            "10.0.0.0/8",
        );
        assert_eq!(
            c,
            Client {
                ip: ip("198.51.100.7"),
                https: true
            }
        );
    }

    #[test]
    fn a_chain_of_trusted_proxies_is_walked_to_the_client() {
        let c = from(
            "127.0.0.1:5000",
            &[
                ("X-Forwarded-For", "198.51.100.7"),
                ("X-Forwarded-For", "10.1.2.3:8080"),
            ],
            "127.0.0.1,10.0.0.0/8",
        );
        assert_eq!(c.ip, ip("198.51.100.7"));
    }

    #[test]
    fn forwarded_wins_over_x_forwarded_for_and_reads_ipv6_ports_and_quotes() {
        let c = from(
            "[::1]:5000",
            &[
                ("X-Forwarded-For", "9.9.9.9"),
                (
                    "Forwarded",
                    "for=\"[2001:db8:cafe::17]:4711\";proto=https, for=10.0.0.5",
                ),
            ],
            "::1,10.0.0.0/8",
        );
        assert_eq!(
            c,
            Client {
                ip: ip("2001:db8:cafe::17"),
                https: true
            }
        );
    }

    #[test]
    fn an_unreadable_hop_leaves_the_last_trusted_proxy_as_the_address() {
        let c = from(
            "10.0.0.2:5000",
            &[("Forwarded", "for=_hidden, for=10.0.0.9")],
            "10.0.0.0/8",
        );
        assert_eq!(c.ip, ip("10.0.0.9"));
    }

    #[test]
    fn a_trusted_peer_without_headers_is_itself_the_client() {
        let c = from("10.0.0.2:5000", &[], "10.0.0.0/8");
        assert_eq!(c.ip, ip("10.0.0.2"));
    }

    #[test]
    fn ipv4_mapped_peers_match_ipv4_blocks() {
        let c = from(
            "[::ffff:10.0.0.2]:5000",
            &[("X-Forwarded-For", "198.51.100.7")],
            "10.0.0.0/8",
        );
        assert_eq!(c.ip, ip("198.51.100.7"));
    }
}
