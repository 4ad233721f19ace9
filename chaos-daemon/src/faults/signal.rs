//! Signal names and numbers as the API accepts them.
use std::str::FromStr as _;

use nix::sys::signal::Signal;

use crate::error::Error;

/// Parses "SIGKILL", "KILL", "kill" or "9"; empty means SIGKILL. Errors name `field`.
pub fn parse(field: &str, text: &str) -> Result<Signal, Error> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(Signal::SIGKILL);
    }
    if let Ok(number) = text.parse::<i32>() {
        return Signal::try_from(number)
            .map_err(|_| Error::invalid(field, format!("{number} is not a signal number")));
    }
    let upper = text.to_ascii_uppercase();
    let name = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    Signal::from_str(&name).map_err(|_| {
        Error::invalid(
            field,
            format!(
                "unknown signal {text:?}; use a name such as SIGKILL, TERM or STOP, or a number"
            ),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_numbers() {
        assert_eq!(parse("f", "").ok(), Some(Signal::SIGKILL));
        assert_eq!(parse("f", "term").ok(), Some(Signal::SIGTERM));
        assert_eq!(parse("f", "SIGSTOP").ok(), Some(Signal::SIGSTOP));
        assert_eq!(parse("f", "9").ok(), Some(Signal::SIGKILL));
        assert!(parse("f", "SIGNOPE").is_err());
        assert!(parse("f", "99").is_err());
    }
}
