//! The seeded mutation fuzzer the parser contracts share: byte-level
//! mutations (insert a token, delete, duplicate, overwrite, splice a seed)
//! from [`crate::rng`], so a printed seed replays the same inputs.

use crate::rng::Rng;

/// What one fuzzer mutates and checks.
pub(crate) struct Target<'a> {
    /// Named in every message, with the seed.
    pub name: &'a str,
    /// Valid inputs to start from, each meeting the contract.
    pub seeds: &'a [&'a [u8]],
    /// Fragments that steer mutations into the parser's corners.
    pub tokens: &'a [&'a [u8]],
    /// Inputs stay below this many bytes.
    pub max_len: usize,
}

/// `STRATA_SEED` or `default`, and `STRATA_FUZZ_ITERATIONS` or `default`.
pub(crate) fn settings(name: &str, seed: u64, iterations: usize) -> (u64, usize) {
    let seed = std::env::var("STRATA_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(seed);
    let n = std::env::var("STRATA_FUZZ_ITERATIONS").ok().and_then(|s| s.parse().ok()).unwrap_or(iterations);
    eprintln!("{name} fuzz: seed {seed} (STRATA_SEED replays it), {n} inputs");
    (seed, n)
}

/// One to four byte-level mutations of `input`.
pub(crate) fn mutate(rng: &mut Rng, t: &Target<'_>, input: &mut Vec<u8>) {
    for _ in 0..=rng.below(4) {
        let at = rng.index(input.len() + 1);
        match rng.below(7) {
            0 | 1 => {
                let tok = rng.pick(t.tokens);
                input.splice(at..at, tok.iter().copied());
            }
            2 if !input.is_empty() => {
                let end = (at + 1 + rng.index(8)).min(input.len());
                input.drain(at.min(end)..end);
            }
            3 if at < input.len() => {
                let end = (at + 1 + rng.index(32)).min(input.len());
                let copy = input[at..end].to_vec();
                let to = rng.index(input.len() + 1);
                input.splice(to..to, copy);
            }
            4 if at < input.len() => input[at] = rng.bytes(1)[0],
            5 if at < input.len() => input[at] ^= 1 << rng.below(8),
            _ => {
                let other = rng.pick(t.seeds);
                let from = rng.index(other.len() + 1);
                let to = (from + rng.index(64)).min(other.len());
                input.splice(at..at, other[from..to].iter().copied());
            }
        }
    }
    input.truncate(t.max_len);
}

/// Runs `check` on every seed, then on `iterations` mutated inputs
/// (`mutate` may add structure-aware mutations and fix-ups after the byte
/// ones); panics with the seed, the iteration and the input on the first
/// broken contract or panic.
pub(crate) fn run(
    t: &Target<'_>,
    seed: u64,
    iterations: usize,
    mutate: impl Fn(&mut Rng, &mut Vec<u8>),
    check: impl Fn(&[u8]) -> Result<(), String>,
) {
    for s in t.seeds {
        if let Err(why) = check(s) {
            panic!("{} fuzz: a seed breaks the contract: {why}\ninput: {:?}", t.name, String::from_utf8_lossy(s));
        }
    }
    let mut rng = Rng::new(seed);
    let mut input = Vec::new();
    for i in 0..iterations {
        // Mostly keep mutating the last input; now and then restart from a
        // seed so inputs keep their shape.
        if i % 8 == 0 {
            input = rng.pick(t.seeds).to_vec();
        }
        mutate(&mut rng, &mut input);
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| check(&input)));
        let why = match outcome {
            Ok(Ok(())) => continue,
            Ok(Err(why)) => why,
            Err(_) => "the parser panicked".to_owned(),
        };
        // The bytes too, for a look with a hex dump (the seed replays them).
        let saved = std::env::temp_dir().join(format!("strata-fuzz-{}-{seed}-{i}.bin", t.name));
        let saved = match std::fs::write(&saved, &input) {
            Ok(()) => format!("saved as {}", saved.display()),
            Err(e) => format!("not saved: {e}"),
        };
        let shown: String = String::from_utf8_lossy(&input).chars().take(400).collect();
        panic!("{} fuzz: seed {seed}, iteration {i}: {why}\n{saved}; input begins {shown:?}", t.name);
    }
}
