//! What an issuer that waits on another party (an ACME server validating
//! challenges) can tell about the order in flight, so `certweave status`
//! answers "which name, which challenge, what did the server say" without
//! anyone reading the server's logs.
//!
//! The report is small by construction: at most [`MAX_AUTHORIZATIONS`]
//! entries, and every text the server chose is cut to [`MAX_TEXT`]
//! characters, so a hostile or chatty server cannot make a Certificate's
//! status (or a state file) large.

use serde::{Deserialize, Serialize};

/// Most authorizations kept in one report (Let's Encrypt allows 100 names
/// per order).
pub const MAX_AUTHORIZATIONS: usize = 100;

/// Most characters kept of a text the server chose (an error detail, a URL).
pub const MAX_TEXT: usize = 512;

/// One order at an external CA, as last seen.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderProgress {
    /// Where the order lives on the server.
    pub url: String,
    /// The order's state in the server's words (`pending`, `ready`,
    /// `invalid`, …).
    pub state: String,
    /// One entry per name of the order.
    #[serde(default)]
    pub authorizations: Vec<AuthorizationProgress>,
}

/// One name of an order and the challenge chosen to prove it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthorizationProgress {
    /// The name (`www.example.com`, `*.example.com`, an IP address).
    pub identifier: String,
    /// The challenge type in the server's words (`http-01`, `dns-01`);
    /// empty when none was attempted (the name was already valid).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub challenge: String,
    /// The authorization's state (`pending`, `valid`, `invalid`, …).
    pub state: String,
    /// The server's error for this name, when validation failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl OrderProgress {
    /// A report for the order at `url` in `state`, with texts cut to
    /// [`MAX_TEXT`].
    pub fn new(url: &str, state: &str) -> Self {
        Self {
            url: cut(url),
            state: cut(state),
            authorizations: Vec::new(),
        }
    }

    /// Adds one name's entry, unless the report is full.
    pub fn push(&mut self, identifier: &str, challenge: &str, state: &str, error: Option<&str>) {
        if self.authorizations.len() >= MAX_AUTHORIZATIONS {
            return;
        }
        self.authorizations.push(AuthorizationProgress {
            identifier: cut(identifier),
            challenge: cut(challenge),
            state: cut(state),
            error: error.map(cut),
        });
    }

    /// The names whose validation failed, with the server's reason.
    pub fn failed(&self) -> impl Iterator<Item = &AuthorizationProgress> {
        self.authorizations.iter().filter(|a| a.error.is_some())
    }
}

/// A text the server chose, cut to [`MAX_TEXT`] characters.
fn cut(text: &str) -> String {
    super::text::cut(text, MAX_TEXT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_texts_are_cut_and_the_list_is_bounded() {
        let mut progress = OrderProgress::new("https://ca.example/order/1", "invalid");
        let long = "x".repeat(1 << 20);
        for i in 0..1_000 {
            progress.push(
                &format!("n{i}.example.com"),
                "http-01",
                "invalid",
                Some(&long),
            );
        }
        assert_eq!(progress.authorizations.len(), MAX_AUTHORIZATIONS);
        let error = progress.authorizations[0].error.as_deref().unwrap();
        assert_eq!(error.chars().count(), MAX_TEXT + 1);
        assert!(error.ends_with('…'));
        assert_eq!(progress.failed().count(), MAX_AUTHORIZATIONS);
    }

    #[test]
    fn short_texts_are_kept_whole() {
        let mut progress = OrderProgress::new("https://ca.example/order/1", "pending");
        progress.push("www.example.com", "dns-01", "pending", None);
        assert_eq!(progress.authorizations[0].identifier, "www.example.com");
        assert_eq!(progress.failed().count(), 0);
        let json = serde_json::to_value(&progress).unwrap();
        assert_eq!(json["authorizations"][0]["challenge"], "dns-01");
        assert!(json["authorizations"][0].get("error").is_none());
    }
}
