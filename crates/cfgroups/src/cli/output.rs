//! Writing to the terminal: stdout coloured as `--color` says (by default only on a
//! terminal and without `NO_COLOR`), and the confirmation prompt.

use std::io::{BufRead, Write};

use super::ColorWhen;

/// Applies `--color` to every later write through [`print_out`]. `auto` leaves the choice to
/// the stream: colour on a terminal, none when `NO_COLOR` is set, forced by
/// `CLICOLOR_FORCE=1`. An explicit `always` or `never` overrides the environment, as
/// command-line flags do.
pub fn set_color(when: ColorWhen) {
    let choice = match when {
        ColorWhen::Auto => anstream::ColorChoice::Auto,
        ColorWhen::Always => anstream::ColorChoice::Always,
        ColorWhen::Never => anstream::ColorChoice::Never,
    };
    choice.write_global();
}

/// Writes to stdout, with or without colour as [`set_color`] chose. A closed pipe
/// (`cfgroups plan | head`) is not an error: the reader has all it wanted.
pub fn print_out(text: &str) -> anyhow::Result<()> {
    let mut out = anstream::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    }
}

/// Writes to stdout through `write`, buffered, like [`print_out`]: for output too large to
/// build as one string first. Output that never carries styles (JSON) skips the colour
/// adapter, which would only scan it for escapes.
pub fn write_out(
    styled: bool,
    write: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> anyhow::Result<()> {
    const BUFFER: usize = 64 * 1024;
    let written = if styled {
        let mut out = std::io::BufWriter::with_capacity(BUFFER, anstream::stdout().lock());
        write(&mut out).and_then(|()| out.flush())
    } else {
        let mut out = std::io::BufWriter::with_capacity(BUFFER, std::io::stdout().lock());
        write(&mut out).and_then(|()| out.flush())
    };
    match written {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    }
}

/// Asks whether to delete `count` groups; only the answer `yes` agrees.
pub fn confirm(
    input: &mut impl BufRead,
    output: &mut impl Write,
    count: usize,
) -> std::io::Result<bool> {
    write!(
        output,
        "\ncfgroups will delete {count} group(s). Each is backed up in the journal first.\n\
         Only 'yes' will be accepted to approve.\n\n  Enter a value: "
    )?;
    output.flush()?;
    let mut answer = String::new();
    input.read_line(&mut answer)?;
    Ok(answer.trim() == "yes")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(text: &str) -> bool {
        let mut shown = Vec::new();
        let agreed = confirm(&mut text.as_bytes(), &mut shown, 3).unwrap();
        assert!(
            String::from_utf8(shown)
                .unwrap()
                .contains("delete 3 group(s)")
        );
        agreed
    }

    #[test]
    fn only_yes_agrees() {
        assert!(answer("yes\n"));
        assert!(answer("  yes \n"));
        for no in ["y\n", "YES\n", "no\n", "\n", ""] {
            assert!(!answer(no), "{no:?} agreed");
        }
    }
}
