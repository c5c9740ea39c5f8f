//! `aralez completions SHELL` and `aralez man`: generated from the clap definitions in
//! [`super::args`], so they never disagree with what the binary accepts.

use std::io::Write;

use clap::CommandFactory;

use super::args::Args;
use super::Exit;

/// Arguments of `aralez completions`.
#[derive(clap::Args, Debug)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// Prints the completion script for `args.shell` to stdout.
pub fn completions(args: &CompletionsArgs) -> Exit {
    let mut out = Vec::new();
    clap_complete::generate(args.shell, &mut Args::command(), "aralez", &mut out);
    emit(&out)
}

/// Prints the roff manual page (section 1) to stdout: the top-level synopsis and options, one
/// `COMMANDS` subsection per subcommand (its synopsis, description and options), then exit
/// status, signals and where the rest of the manual is.
pub fn man() -> Exit {
    match render_man() {
        Ok(out) => emit(&out),
        Err(e) => {
            eprintln!("aralez: cannot render the manual page: {e}");
            Exit::Usage
        }
    }
}

/// The whole manual page as roff.
pub fn render_man() -> std::io::Result<Vec<u8>> {
    let mut cmd = Args::command();
    cmd.build();
    let page = clap_mangen::Man::new(cmd.clone())
        .source(format!("aralez {}", env!("CARGO_PKG_VERSION")))
        .manual("Aralez manual");
    let mut out = Vec::new();
    page.render_title(&mut out)?;
    page.render_name_section(&mut out)?;
    page.render_synopsis_section(&mut out)?;
    page.render_description_section(&mut out)?;
    page.render_options_section(&mut out)?;
    out.extend_from_slice(b".SH COMMANDS\n");
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        let name = sub.get_bin_name().unwrap_or_else(|| sub.get_name());
        out.extend_from_slice(format!(".SS \"{name}\"\n").as_bytes());
        let man = clap_mangen::Man::new(sub.clone());
        let mut section = Vec::new();
        man.render_synopsis_section(&mut section)?;
        man.render_description_section(&mut section)?;
        if sub.get_arguments().any(|a| !a.is_hide_set()) {
            man.render_options_section(&mut section)?;
        }
        out.extend_from_slice(&demote_headings(&section));
    }
    out.extend_from_slice(MAN_TAIL.as_bytes());
    Ok(out)
}

/// A subcommand's sections become paragraphs inside its `.SS`: each `.SH` line is dropped
/// (`.PP` keeps the paragraphs apart).
fn demote_headings(roff: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(roff);
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        if line.starts_with(".SH ") {
            out.push_str(".PP\n");
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    out.into_bytes()
}

/// The hand-written end of the page.
const MAN_TAIL: &str = r#".SH "EXIT STATUS"
0 done (the input is valid), 1 invalid input or a negative answer (\fBhealthcheck\fR, \fBroute\fR without a route), 2 usage, I/O or setup error, 3 warnings under \fB\-\-deny\-warnings\fR.
.SH SIGNALS
.TP
\fBSIGHUP\fR
reload upstreams.yaml, conf.d, certificates and secret files (one new generation, swapped whole or rejected whole)
.TP
\fBSIGTERM\fR
graceful shutdown: stop accepting, let requests in flight finish
.TP
\fBSIGQUIT\fR
graceful upgrade: hand the listening sockets to a new process started with \fB\-u\fR, then drain
.TP
\fBSIGINT\fR
fast shutdown
.TP
\fBSIGUSR1\fR
reopen \fBaccess_log_file\fR (log rotation)
.SH FILES
\fImain.yaml\fR (process settings; a change needs a restart or an upgrade) and \fIupstreams.yaml\fR with \fIconf.d/*.yaml\fR beside it (routing; reloaded on change).
.SH "SEE ALSO"
docs/configuration.md, docs/operations.md, docs/schema/ and SECURITY.md in the Aralez source tree.
"#;

fn emit(bytes: &[u8]) -> Exit {
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(bytes).and_then(|()| stdout.flush()) {
        Ok(()) => Exit::Success,
        Err(e) => {
            eprintln!("aralez: cannot write to stdout: {e}");
            Exit::Usage
        }
    }
}
