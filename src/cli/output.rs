//! Writing to the terminal: stdout without colour when it is not a terminal, and the
//! confirmation prompt.

use std::io::{BufRead, Write};

/// Writes to stdout, stripping colour when stdout is not a terminal or `NO_COLOR` is set.
/// A closed pipe (`cfgroups plan | head`) is not an error.
pub fn print_out(text: &str) -> anyhow::Result<()> {
    let mut out = anstream::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
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
