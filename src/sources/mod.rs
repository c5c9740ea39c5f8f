//! Sources of configuration change. Each one ends in [`crate::generation::GenerationStore`]: the
//! reload thread (file watches, Consul, Kubernetes and SIGHUP) in `apply_disk`, the push API in `apply_push`.

pub mod consul;
pub mod kubernetes;
pub mod push;
pub mod reload;
pub mod watch;

/// A provider's token file, read now (so a rotated file is used at once): its trimmed content,
/// or why it cannot be sent as a header value.
pub(crate) fn read_token_file(path: &std::path::Path) -> Result<String, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let token = text.trim();
    if token.is_empty() || !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(format!(
            "{} is empty or holds characters a header cannot carry",
            path.display()
        ));
    }
    Ok(token.to_string())
}
