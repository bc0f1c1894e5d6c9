//! Signal arguments as runc takes them: a number, or a name with or
//! without `SIG`, in any case.

use crate::sys::signal::Signal;

pub fn parse(text: &str) -> Result<Signal, String> {
    if let Ok(n) = text.parse::<i32>() {
        return Signal::try_from(n).map_err(|_| format!("unknown signal {text:?}"));
    }
    let upper = text.to_ascii_uppercase();
    let name = if upper.starts_with("SIG") { upper } else { format!("SIG{upper}") };
    name.parse().map_err(|_| format!("unknown signal {text:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_names_with_or_without_sig() {
        assert_eq!(parse("9"), Ok(Signal::SIGKILL));
        assert_eq!(parse("KILL"), Ok(Signal::SIGKILL));
        assert_eq!(parse("sigterm"), Ok(Signal::SIGTERM));
        assert_eq!(parse("SIGUSR1"), Ok(Signal::SIGUSR1));
        assert!(parse("NOPE").is_err());
        assert!(parse("99").is_err());
    }
}
