//! Bearer tokens: read from the source's tokens file at each request, compared in constant time.

use super::{Target, UploadError};
use axum::http::{HeaderMap, header};
use tracing::error;

/// Checks `Authorization: Bearer <token>` against the source's tokens file, read now.
pub(super) async fn authorize(source: &str, target: &Target, headers: &HeaderMap) -> Result<(), UploadError> {
    let unauthorized = || UploadError::Unauthorized(source.to_string());
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
        .filter(|token| !token.is_empty())
        .ok_or_else(unauthorized)?;
    let tokens = tokio::fs::read_to_string(&target.tokens_file).await.map_err(|e| {
        error!(source = %source, file = %target.tokens_file.display(), error = %e, "cannot read the push tokens file");
        UploadError::Tokens(source.to_string())
    })?;
    if token_matches(&tokens, presented) { Ok(()) } else { Err(unauthorized()) }
}

/// Whether `presented` is one of the tokens (non-empty lines not starting with `#`). Every
/// token is compared, through BLAKE3 digests whose equality is constant-time, so neither the
/// position of a match nor the length of a token shows in the timing.
pub(super) fn token_matches(tokens: &str, presented: &str) -> bool {
    let presented = blake3::hash(presented.as_bytes());
    let mut found = false;
    for line in tokens.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
        found |= blake3::hash(line.as_bytes()) == presented;
    }
    found
}
