//! Two saved runs side by side: every case present in both, the ratio of
//! medians (after / before) and its noise bounds from the two spreads
//! ([`Change`]). Pure.

use super::stats::{fmt_ns, fmt_size, Change};
use super::{Record, Results};
use crate::bench::harness::print_table;
use std::io::{self, Write};

/// One case in both runs.
#[derive(Debug, Clone)]
pub struct Row<'a> {
    pub before: &'a Record,
    pub after: &'a Record,
    pub change: Option<Change>,
}

/// Cases of `before` that `after` also has, in `before`'s order.
pub fn rows<'a>(before: &'a Results, after: &'a Results) -> Vec<Row<'a>> {
    before
        .records
        .iter()
        .filter_map(|b| {
            let a = after.records.iter().find(|a| a.key() == b.key())?;
            Some(Row { before: b, after: a, change: Change::between(&b.quantiles, &a.quantiles) })
        })
        .collect()
}

/// A short name for a case: `overlay on ext4 write 64 MiB cold`.
pub fn case_name(r: &Record) -> String {
    let mut s = format!("{} {}", r.setup, r.operation.name());
    if r.containers > 1 {
        s.push_str(&format!(" x{}", r.containers));
    }
    s.push_str(&format!(" {}", fmt_size(r.file_size)));
    if r.layer_depth > 1 {
        s.push_str(&format!(" {} layers", r.layer_depth));
    }
    if r.dir_depth > 1 {
        s.push_str(&format!(" {} dirs", r.dir_depth));
    }
    s.push_str(&format!(" {}", r.cache.name()));
    s
}

/// Prints the comparison table.
pub fn print(out: &mut impl Write, before: &Results, after: &Results) -> io::Result<()> {
    writeln!(
        out,
        "before: {} ({} scale); after: {} ({} scale)",
        before.started, before.scale, after.started, after.scale
    )?;
    writeln!(out, "ratio = after p50 / before p50; bounds = [after p25 / before p75, after p75 / before p25]\n")?;
    let table: Vec<Vec<String>> = rows(before, after)
        .iter()
        .map(|r| {
            let (ratio, bounds, verdict) = match r.change {
                Some(c) => (format!("{:.2}", c.ratio), format!("[{:.2}, {:.2}]", c.low, c.high), c.verdict()),
                None => ("-".into(), "-".into(), "no ratio (zero median)".into()),
            };
            vec![
                case_name(r.before),
                fmt_ns(r.before.quantiles.p50_ns),
                fmt_ns(r.after.quantiles.p50_ns),
                ratio,
                bounds,
                verdict,
            ]
        })
        .collect();
    print_table(out, &["case", "before p50", "after p50", "ratio", "noise bounds", "reading"], &table, 1)?;
    let missing = before.records.len().saturating_sub(table.len());
    if missing > 0 {
        writeln!(out, "\n{missing} case(s) of the first run are not in the second")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A saved run reads back equal (`bench report`, and the comparison of
    /// two runs, use the saved floats): serde_json needs `float_roundtrip`
    /// for that, without which some values come back one ULP off.
    #[test]
    fn floats_survive_a_json_round_trip_exactly() {
        let mut rng = crate::rng::Rng::new(7);
        for _ in 0..20_000 {
            #[allow(clippy::cast_precision_loss)]
            let x = rng.next_u64() as f64 / 1e9;
            let back: f64 = serde_json::from_str(&serde_json::to_string(&x).unwrap()).unwrap();
            assert_eq!(back.to_bits(), x.to_bits(), "{x}");
        }
    }

    #[test]
    fn matches_cases_by_coordinates_and_names_them() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/bench/copyup/testdata/tiny.json");
        let a = Results::read(&path).unwrap();
        let mut b = a.clone();
        b.records.remove(0);
        for r in &mut b.records {
            r.quantiles.p25_ns *= 3;
            r.quantiles.p50_ns *= 3;
            r.quantiles.p75_ns *= 3;
        }
        let rows = rows(&a, &b);
        assert_eq!(rows.len(), a.records.len() - 1);
        assert!(rows.iter().all(|r| r.before.key() == r.after.key()));
        let mut out = Vec::new();
        print(&mut out, &a, &b).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("1 case(s) of the first run are not in the second"), "{text}");
        assert!(text.contains("3.00"), "{text}");
        assert_eq!(case_name(&a.records[0]), "overlay on ext4 write 4 KiB warm");
    }
}
