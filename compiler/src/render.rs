//! Rendering diagnostics for people and machines: human, short (grep-style), JSON, GitHub
//! workflow commands and SARIF 2.1.0.

use serde_json::{json, Map, Value};

use crate::codes;
use crate::diag::{Diagnostic, Severity};
use crate::input::Source;

/// Output format of [`render`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Multi-line, with the source line and a caret.
    Human,
    /// One `file:line:col: severity[CODE]: message [path]` line per diagnostic.
    Short,
    /// A JSON array of diagnostics (code, severity, file, line, col, path, message).
    Json,
    /// GitHub Actions workflow commands (`::error file=...::msg`), safely escaped.
    Github,
    /// SARIF 2.1.0.
    Sarif,
}

/// Renders `diags`; `sources` provides the text for the human format's excerpts.
pub fn render(diags: &[Diagnostic], format: Format, sources: &[Source<'_>]) -> String {
    match format {
        Format::Human => human(diags, sources),
        Format::Short => diags.iter().map(|d| short_line(d) + "\n").collect(),
        Format::Json => {
            serde_json::to_string_pretty(&diags.iter().map(json_of).collect::<Vec<_>>())
                .unwrap_or_default()
                + "\n"
        }
        Format::Github => diags.iter().map(|d| github_line(d) + "\n").collect(),
        Format::Sarif => sarif(diags),
    }
}

fn sev(d: &Diagnostic) -> &'static str {
    match d.severity {
        Severity::Error => "error",
        Severity::Warning => "warning",
    }
}

fn location(d: &Diagnostic) -> String {
    if d.line == 0 {
        d.file.clone()
    } else {
        format!("{}:{}:{}", d.file, d.line, d.col)
    }
}

/// Replaces control characters so that one diagnostic stays one line.
fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

fn short_line(d: &Diagnostic) -> String {
    let at = if d.path.is_empty() {
        String::new()
    } else {
        format!(" [{}]", one_line(&d.path))
    };
    format!(
        "{}: {}[{}]: {}{at}",
        one_line(&location(d)),
        sev(d),
        d.code,
        one_line(&d.message)
    )
}

fn human(diags: &[Diagnostic], sources: &[Source<'_>]) -> String {
    let mut out = String::new();
    for d in diags {
        out.push_str(&format!(
            "{}[{}]: {}\n",
            sev(d),
            d.code,
            one_line(&d.message)
        ));
        out.push_str(&format!("  --> {}\n", one_line(&location(d))));
        let line = sources
            .iter()
            .find(|s| s.name == d.file)
            .and_then(|s| s.text.lines().nth((d.line as usize).checked_sub(1)?));
        if let Some(line) = line {
            let num = d.line.to_string();
            let pad = " ".repeat(num.len());
            let caret_pad: String = line
                .chars()
                .take((d.col as usize).saturating_sub(1))
                .map(|c| if c == '\t' { '\t' } else { ' ' })
                .collect();
            out.push_str(&format!(
                "{pad} |\n{num} | {}\n{pad} | {caret_pad}^\n",
                one_line(line)
            ));
        }
        if !d.path.is_empty() {
            out.push_str(&format!("  = at: {}\n", one_line(&d.path)));
        }
        if let Some(info) = codes::info(d.code) {
            out.push_str(&format!("  = help: {}\n", info.fix));
        }
        out.push('\n');
    }
    let errors = diags.iter().filter(|d| d.is_error()).count();
    let warnings = diags.len() - errors;
    if !diags.is_empty() {
        out.push_str(&format!("{errors} error(s), {warnings} warning(s)\n"));
    }
    out
}

fn json_of(d: &Diagnostic) -> Value {
    json!({
        "code": d.code,
        "severity": sev(d),
        "file": d.file,
        "line": d.line,
        "col": d.col,
        "path": d.path,
        "message": d.message,
    })
}

/// Escapes workflow-command data (the message): `%`, CR, LF.
pub(crate) fn gh_data(s: &str) -> String {
    s.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// Escapes workflow-command property values: data escapes plus `:` and `,`.
pub(crate) fn gh_prop(s: &str) -> String {
    gh_data(s).replace(':', "%3A").replace(',', "%2C")
}

fn github_line(d: &Diagnostic) -> String {
    let mut props = vec![format!("file={}", gh_prop(&d.file))];
    if d.line > 0 {
        props.push(format!("line={}", d.line));
        props.push(format!("col={}", d.col.max(1)));
    }
    props.push(format!("title={}", gh_prop(d.code)));
    let msg = if d.path.is_empty() {
        d.message.clone()
    } else {
        format!("{} (at {})", d.message, d.path)
    };
    format!("::{} {}::{}", sev(d), props.join(","), gh_data(&msg))
}

fn sarif(diags: &[Diagnostic]) -> String {
    let mut used: Vec<&str> = diags.iter().map(|d| d.code).collect();
    used.sort_unstable();
    used.dedup();
    let rules: Vec<Value> = used
        .iter()
        .map(|c| {
            let info = codes::info(c);
            json!({
                "id": c,
                "shortDescription": { "text": info.map_or("", |i| i.meaning) },
                "help": { "text": info.map_or("", |i| i.fix) },
            })
        })
        .collect();
    let results: Vec<Value> = diags
        .iter()
        .map(|d| {
            let mut physical = Map::new();
            physical.insert("artifactLocation".into(), json!({ "uri": d.file }));
            if d.line > 0 {
                physical.insert(
                    "region".into(),
                    json!({ "startLine": d.line, "startColumn": d.col.max(1) }),
                );
            }
            let mut loc = Map::new();
            loc.insert("physicalLocation".into(), Value::Object(physical));
            if !d.path.is_empty() {
                loc.insert(
                    "logicalLocations".into(),
                    json!([{ "fullyQualifiedName": d.path }]),
                );
            }
            json!({
                "ruleId": d.code,
                "level": sev(d),
                "message": { "text": d.message },
                "locations": [loc],
            })
        })
        .collect();
    let doc = json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": { "driver": {
                "name": "aralez",
                "informationUri": "https://github.com/sadoyan/aralez",
                "rules": rules,
            }},
            "columnKind": "unicodeCodePoints",
            "results": results,
        }],
    });
    serde_json::to_string_pretty(&doc).unwrap_or_default() + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(code: &'static str, file: &str, line: u32, col: u32, msg: &str) -> Diagnostic {
        Diagnostic::new(code, file, (line, col), "a.\"b\".c[0]", msg)
    }

    #[test]
    fn github_escaping_blocks_injection() {
        let diag = d(
            codes::BAD_SERVER,
            "dir,x:y/up%.yaml",
            3,
            5,
            "bad `x`\n::error::injected\r100%",
        );
        let line = render(&[diag], Format::Github, &[]);
        assert_eq!(line.lines().count(), 1, "{line}");
        assert!(line.starts_with("::error file=dir%2Cx%3Ay/up%25.yaml,line=3,col=5,title=E0106::"));
        assert!(line.contains("bad `x`%0A::error::injected%0D100%25"));
        assert!(!line.trim_end().contains('\n'));
        assert_eq!(gh_prop("a:b,c%\n"), "a%3Ab%2Cc%25%0A");
    }

    #[test]
    fn sarif_shape() {
        let diags = [
            d(codes::BAD_PORT, "u.yaml", 4, 1, "port"),
            d(codes::EMPTY, "e.yaml", 0, 0, "empty"),
        ];
        let v: Value =
            serde_json::from_str(&render(&diags, Format::Sarif, &[])).unwrap_or(Value::Null);
        assert_eq!(v["version"], "2.1.0");
        let run = &v["runs"][0];
        assert_eq!(run["tool"]["driver"]["name"], "aralez");
        assert_eq!(
            run["tool"]["driver"]["rules"].as_array().map(Vec::len),
            Some(2)
        );
        let r = &run["results"][0];
        assert_eq!(r["ruleId"], "E0107");
        assert_eq!(r["level"], "error");
        let region = &r["locations"][0]["physicalLocation"]["region"];
        assert_eq!(region["startLine"], 4);
        assert_eq!(region["startColumn"], 1);
        assert!(run["results"][1]["locations"][0]["physicalLocation"]["region"].is_null());
    }

    #[test]
    fn json_has_yaml_path() {
        let v: Value = serde_json::from_str(&render(
            &[d(codes::NO_SERVERS, "u.yaml", 2, 3, "m")],
            Format::Json,
            &[],
        ))
        .unwrap_or(Value::Null);
        assert_eq!(v[0]["path"], "a.\"b\".c[0]");
        assert_eq!(v[0]["code"], "E0108");
        assert_eq!(v[0]["line"], 2);
    }

    #[test]
    fn human_and_short() {
        let src = Source {
            name: "u.yaml",
            text: "a:\n  b: 1\n",
        };
        let diag = d(codes::WRONG_TYPE, "u.yaml", 2, 6, "expected x");
        let h = render(std::slice::from_ref(&diag), Format::Human, &[src]);
        assert!(h.contains("2 |   b: 1\n  |      ^"), "{h}");
        let s = render(&[diag], Format::Short, &[]);
        assert_eq!(s, "u.yaml:2:6: error[E0006]: expected x [a.\"b\".c[0]]\n");
    }
}
