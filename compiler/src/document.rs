//! Loading one source into a root mapping, with the file-level diagnostics (syntax, budget, empty,
//! non-mapping root).

use crate::codes;
use crate::diag::Sink;
use crate::yaml::{self, BudgetKind, Node, Value};

/// Parses `text`; `None` (with a diagnostic) unless the root is a mapping.
pub(crate) fn load_root(sink: &mut Sink<'_>, text: &str) -> Option<Node> {
    match yaml::parse(text) {
        Err(e) => {
            let (code, fix) = if let Some(kind) = e.budget {
                match kind {
                    BudgetKind::Aliases => (
                        codes::YAML_BUDGET,
                        "flatten the document; YAML aliases must not multiply content",
                    ),
                    BudgetKind::Depth => (codes::YAML_TOO_DEEP, "flatten the structure"),
                    BudgetKind::Size | BudgetKind::Bytes => (
                        codes::YAML_TOO_LARGE,
                        "split the hosts over several files in `conf.d/` (each file has its own budget)",
                    ),
                }
            } else if e.message.contains("one document per file") {
                (codes::SYNTAX, "remove the second document")
            } else {
                (codes::SYNTAX, "fix the YAML syntax here")
            };
            sink.report(code, (e.line, e.col), "", format!("{}; {fix}", e.message));
            None
        }
        Ok(None) => {
            sink.report(
                codes::EMPTY,
                (0, 0),
                "",
                "the file is empty; write the settings into it, or remove it",
            );
            None
        }
        Ok(Some(node)) => {
            if matches!(node.value, Value::Map(_)) {
                Some(node)
            } else {
                sink.report(
                    codes::ROOT_NOT_MAP,
                    (node.line, node.col),
                    "",
                    format!(
                        "the document is {}, not a mapping; write `key: value` settings at the top level",
                        node.value.kind()
                    ),
                );
                None
            }
        }
    }
}
