//! The parser's contract on arbitrary text, for fuzzing: [`check`] is what
//! both the in-tree mutation fuzzer (the tests below, seeded by
//! [`crate::rng`], run by every `cargo test`) and the coverage-guided
//! `cargo fuzz` target in `fuzz/` assert on every input.
//!
//! For any text, [`parse`] returns (no panic, no hang) and:
//! * an error points inside the input: line 1..=lines+1, column ≥ 1, a
//!   non-empty message;
//! * instructions come in source order, each at a real line and a column
//!   on it; the first is `FROM` or `ARG` (or there are none);
//! * the `original` text of an instruction starts with its keyword, in any
//!   case;
//! * parsing is deterministic;
//!
//! and [`expand`] of any word, with any variables, returns the same way.

use super::{expand, parse, Kind};

/// Checks the contract on `text`; `Err` says which part broke.
pub fn check(text: &str) -> Result<(), String> {
    let body = text.strip_prefix('\u{feff}').unwrap_or(text);
    let lines: Vec<&str> = body.lines().collect();
    let n = lines.len();
    let first = parse(text);
    if first != parse(text) {
        return Err("two parses of the same text differ".into());
    }
    match first {
        Err(e) => {
            if e.line == 0 || e.line > n + 1 || e.column == 0 || e.message.trim().is_empty() {
                return Err(format!("error outside the input ({n} lines): {e:?}"));
            }
        }
        Ok(df) => {
            let mut last = 0;
            for ins in &df.instructions {
                if ins.line <= last || ins.line > n {
                    return Err(format!("instruction at line {} after line {last} of {n}", ins.line));
                }
                last = ins.line;
                let width = lines[ins.line - 1].chars().count();
                if ins.column == 0 || ins.column > width + 1 {
                    return Err(format!("column {} on line {} of width {width}", ins.column, ins.line));
                }
                let kw = ins.kind.keyword();
                let head: String = ins.original.chars().take(kw.chars().count()).collect();
                if !head.eq_ignore_ascii_case(kw) {
                    return Err(format!("{kw} at line {} has original {:?}", ins.line, ins.original));
                }
            }
            if let Some(first) = df.instructions.first() {
                if !matches!(first.kind, Kind::From { .. } | Kind::Arg(..)) {
                    return Err(format!("first instruction is {}", first.kind.keyword()));
                }
            }
        }
    }
    let vars = |name: &str| (name.len() % 3 != 0).then(|| format!("<{name}>"));
    for escape in ['\\', '`'] {
        if let Err(e) = expand(text, &vars, escape) {
            if e.column == 0 || e.column > text.chars().count() + 1 {
                return Err(format!("expand error outside the word: {e:?}"));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::check;
    use crate::rng::Rng;

    /// Real Dockerfiles covering every construct the parser knows.
    const SEEDS: &[&str] = &[
        "FROM busybox:latest\nCOPY . /app\n",
        "FROM acme/my-base-image:1.0\nCMD /app/hello.sh\n",
        "# syntax=docker/dockerfile:1\n# escape=`\nFROM scratch AS a\nRUN echo `\n  hi\n",
        "ARG V=1\nFROM --platform=linux/amd64 img:${V:-2} AS build\nENV A=\"x y\" B=${A:+z}\nRUN [\"sh\", \"-c\", \"echo $A\"]\n",
        "FROM b\nRUN <<EOF\necho one\nEOF\nCOPY <<-\"A\" <<'B' /dst/\n\tbody a\n\tA\nbody b\nB\n",
        "FROM b\nCOPY --from=build --chown=1:1 --chmod=0755 a* b?/[c] /d/\nADD x.tar /\nWORKDIR /w\nUSER u:g\n",
        "FROM b\nLABEL a=b \"c d\"=e\nEXPOSE 80/tcp 53/udp\nVOLUME [\"/v\"]\nSHELL [\"/bin/sh\", \"-c\"]\nSTOPSIGNAL SIGTERM\n",
        "FROM b\nHEALTHCHECK --interval=5s --timeout=3s --retries=2 CMD true\nHEALTHCHECK NONE\nONBUILD RUN make\nENTRYPOINT [\"/e\"]\n",
        "FROM b\n# comment\n\nRUN a \\\n# inner comment\n\n  b \\\n  c\nmaintainer me\n",
    ];

    /// Fragments that steer mutations into the parser's corners.
    const TOKENS: &[&str] = &[
        "\\\n",
        "`\n",
        "\n",
        " ",
        "\t",
        "\r\n",
        "<<",
        "<<-",
        "EOF",
        "\"",
        "'",
        "[",
        "]",
        ",",
        "${",
        "}",
        ":-",
        ":+",
        ":?",
        "$",
        "=",
        "--",
        "--from=",
        "AS ",
        "# escape=`\n",
        "# syntax=x\n",
        "FROM ",
        "RUN ",
        "COPY ",
        "ARG ",
        "ONBUILD ",
        "HEALTHCHECK ",
        "CMD ",
        "\u{feff}",
        "é",
        "\u{0}",
        "#",
        "\\",
        "`",
    ];

    fn mutate(rng: &mut Rng, text: &str) -> String {
        let mut chars: Vec<char> = text.chars().collect();
        for _ in 0..=rng.below(4) {
            let at = rng.index(chars.len() + 1);
            match rng.below(6) {
                0 | 1 => {
                    let t = rng.pick(TOKENS);
                    chars.splice(at..at, t.chars());
                }
                2 if !chars.is_empty() => {
                    let end = (at + 1 + rng.index(8)).min(chars.len());
                    chars.drain(at.min(end)..end);
                }
                3 if at < chars.len() => {
                    let end = (at + 1 + rng.index(16)).min(chars.len());
                    let copy: Vec<char> = chars[at..end].to_vec();
                    let to = rng.index(chars.len() + 1);
                    chars.splice(to..to, copy);
                }
                4 if at < chars.len() => chars[at] = char::from(b' ' + u8::try_from(rng.below(95)).expect("< 95")),
                _ => {
                    let other: Vec<char> = rng.pick(SEEDS).chars().collect();
                    let from = rng.index(other.len());
                    chars.splice(at..at, other[from..].iter().copied());
                }
            }
        }
        chars.into_iter().collect()
    }

    fn run(seed: u64, iterations: usize) {
        let mut rng = Rng::new(seed);
        let mut text = String::new();
        for i in 0..iterations {
            // Mostly keep mutating the last input; now and then restart
            // from a seed so inputs stay Dockerfile-shaped.
            if i % 8 == 0 || text.len() > 4096 {
                text = (*rng.pick(SEEDS)).to_owned();
            }
            text = mutate(&mut rng, &text);
            let input = text.clone();
            let outcome = std::panic::catch_unwind(|| check(&input));
            match outcome {
                Ok(Ok(())) => {}
                Ok(Err(why)) => panic!("seed {seed}, iteration {i}: {why}\ninput: {input:?}"),
                Err(_) => panic!("seed {seed}, iteration {i}: the parser panicked on {input:?}"),
            }
        }
    }

    #[test]
    fn every_seed_meets_the_contract() {
        for s in SEEDS {
            check(s).unwrap_or_else(|e| panic!("{e}: {s:?}"));
            crate::build::parser::parse(s).unwrap_or_else(|e| panic!("seed does not parse: {e}: {s:?}"));
        }
    }

    /// 20,000 mutated Dockerfiles per run (a few seconds); `STRATA_SEED`
    /// replays a failure, `STRATA_FUZZ_ITERATIONS` runs longer.
    #[test]
    fn mutated_dockerfiles_meet_the_contract() {
        let seed = std::env::var("STRATA_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(0xd0c_f11e);
        let n = std::env::var("STRATA_FUZZ_ITERATIONS").ok().and_then(|s| s.parse().ok()).unwrap_or(20_000);
        eprintln!("parser fuzz: seed {seed} (STRATA_SEED replays it), {n} inputs");
        run(seed, n);
    }
}
