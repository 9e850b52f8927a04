//! Where a request came from: the client's address (behind trusted proxies, the one they
//! saw) and the request ID, for the audit log and sign-in throttling.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::response::Response;
use renrakucho_store::audit::Origin;

use crate::state::AppState;

/// Where a request came from, for the audit log and sign-in throttling.
pub struct RequestOrigin(pub Origin);

/// The client's address: the TCP peer, unless the peer is a trusted proxy; then the nearest
/// address of `X-Forwarded-For` (read from the right, as each proxy appends the address it
/// saw) that is not itself a trusted proxy. Entries a client wrote further left are never
/// believed: only what trusted proxies appended counts.
pub fn client_address(
    peer: Option<IpAddr>,
    forwarded: &[&str],
    trusted: &[ipnet::IpNet],
) -> Option<IpAddr> {
    let is_trusted = |a: &IpAddr| trusted.iter().any(|n| n.contains(a));
    let mut client = peer?;
    if !is_trusted(&client) {
        return Some(client);
    }
    let hops = forwarded
        .iter()
        .flat_map(|h| h.split(','))
        .map(str::trim)
        .rev();
    for hop in hops {
        match hop.parse::<IpAddr>() {
            Ok(addr) => {
                client = addr;
                if !is_trusted(&addr) {
                    break;
                }
            }
            // Not an address: nothing beyond it can be trusted either.
            Err(_) => break,
        }
    }
    Some(client)
}

impl FromRequestParts<AppState> for RequestOrigin {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip());
        let forwarded: Vec<&str> = parts
            .headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        let client_addr = client_address(peer, &forwarded, &state.trusted_proxies);
        let request_id = parts
            .headers
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        Ok(RequestOrigin(Origin {
            client_addr,
            request_id,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::client_address;

    #[test]
    fn forwarded_addresses_count_only_behind_trusted_proxies() {
        let trusted: Vec<ipnet::IpNet> = vec!["10.0.0.0/24".parse().unwrap()];
        let ip = |s: &str| Some(s.parse().unwrap());
        // Not from a trusted proxy: the peer, whatever the header says.
        assert_eq!(
            client_address(ip("198.51.100.7"), &["203.0.113.5"], &trusted),
            ip("198.51.100.7")
        );
        // From the proxy: the address it appended.
        assert_eq!(
            client_address(ip("10.0.0.5"), &["203.0.113.5"], &trusted),
            ip("203.0.113.5")
        );
        // A client's own entries further left are not believed; proxies in a chain are
        // skipped; several headers read as one list.
        assert_eq!(
            client_address(
                ip("10.0.0.5"),
                &["1.2.3.4, 203.0.113.5", "10.0.0.9"],
                &trusted
            ),
            ip("203.0.113.5")
        );
        // Garbage stops the walk at the last believable hop.
        assert_eq!(
            client_address(ip("10.0.0.5"), &["203.0.113.5, nonsense"], &trusted),
            ip("10.0.0.5")
        );
        // No proxies configured: the peer.
        assert_eq!(
            client_address(ip("10.0.0.5"), &["203.0.113.5"], &[]),
            ip("10.0.0.5")
        );
    }
}
