//! `report.html`: one self-contained page (no scripts, no external
//! files) with the environment, which setups ran, the physics check, SVG
//! line plots (log-log) and every record's numbers. Pure: results in,
//! text out.

use super::physics::{self, Verdict};
use super::stats::{fmt_ns, fmt_size};
use super::{compare, Cache, Op, Part, Record, Results};
use std::fmt::Write;

/// HTML-escapes text.
pub fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// One line of a plot.
#[derive(Debug, Clone)]
pub struct Series {
    pub name: String,
    /// (x, y), both positive (log scales).
    pub points: Vec<(f64, f64)>,
}

const COLORS: &[&str] = &["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"];
const W: f64 = 720.0;
const H: f64 = 360.0;
/// Plot margins: left, right (legend), top, bottom.
const L: f64 = 80.0;
const R: f64 = 230.0;
const T: f64 = 34.0;
const B: f64 = 48.0;

#[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss, clippy::cast_precision_loss)]
fn fmt_y(v: f64) -> String {
    fmt_ns(v.round() as u64)
}

/// A log-log line plot as an inline `<svg>`: x ticks at the data's x
/// values (formatted by `fmt_x`), y ticks at powers of ten.
pub fn plot(title: &str, x_label: &str, series: &[Series], fmt_x: &dyn Fn(f64) -> String) -> String {
    let pts: Vec<(f64, f64)> =
        series.iter().flat_map(|s| s.points.iter().copied()).filter(|p| p.0 > 0.0 && p.1 > 0.0).collect();
    let mut svg = format!(
        "<svg class=\"plot\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{H}\" viewBox=\"0 0 {W} {H}\">\
         <text x=\"{}\" y=\"20\" text-anchor=\"middle\" font-weight=\"bold\">{}</text>",
        (L + W - R) / 2.0,
        esc(title)
    );
    if pts.is_empty() {
        svg.push_str("<text x=\"100\" y=\"150\">no data</text></svg>");
        return svg;
    }
    let lx = |x: f64| x.log10();
    let (mut x0, mut x1) = pts.iter().fold((f64::MAX, f64::MIN), |(a, b), p| (a.min(lx(p.0)), b.max(lx(p.0))));
    let (y0, y1) = pts.iter().fold((f64::MAX, f64::MIN), |(a, b), p| (a.min(p.1.log10()), b.max(p.1.log10())));
    if x1 - x0 < 1e-9 {
        x0 -= 0.5;
        x1 += 0.5;
    }
    let (y0, y1) = (y0.floor(), y1.ceil().max(y0.floor() + 1.0));
    let px = |x: f64| L + (lx(x) - x0) / (x1 - x0) * (W - L - R);
    let py = |y: f64| H - B - (y.log10() - y0) / (y1 - y0) * (H - T - B);
    // Axes, grid and ticks.
    let _ = write!(
        svg,
        "<rect x=\"{L}\" y=\"{T}\" width=\"{}\" height=\"{}\" fill=\"none\" stroke=\"#999\"/>",
        W - L - R,
        H - T - B
    );
    let mut e = y0;
    while e <= y1 + 1e-9 {
        let v = 10f64.powf(e);
        let y = py(v);
        let _ = write!(
            svg,
            "<line x1=\"{L}\" x2=\"{}\" y1=\"{y:.1}\" y2=\"{y:.1}\" stroke=\"#eee\"/>\
             <text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\" font-size=\"11\">{}</text>",
            W - R,
            L - 6.0,
            y + 4.0,
            esc(&fmt_y(v))
        );
        e += 1.0;
    }
    let mut xs: Vec<f64> = pts.iter().map(|p| p.0).collect();
    xs.sort_by(f64::total_cmp);
    xs.dedup();
    // Labels closer than 30 px to the previous one are left out (499 and
    // 500 layers); their grid lines stay.
    let mut last_label = f64::MIN;
    for x in xs {
        let at = px(x);
        let _ = write!(svg, "<line x1=\"{at:.1}\" x2=\"{at:.1}\" y1=\"{T}\" y2=\"{}\" stroke=\"#eee\"/>", H - B);
        if at - last_label >= 30.0 {
            last_label = at;
            let _ = write!(
                svg,
                "<text x=\"{at:.1}\" y=\"{}\" text-anchor=\"middle\" font-size=\"11\">{}</text>",
                H - B + 16.0,
                esc(&fmt_x(x))
            );
        }
    }
    let _ = write!(
        svg,
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\" font-size=\"12\">{}</text>\
         <text x=\"14\" y=\"{}\" text-anchor=\"middle\" font-size=\"12\" transform=\"rotate(-90 14 {})\">p50 latency (log)</text>",
        (L + W - R) / 2.0,
        H - 10.0,
        esc(x_label),
        (T + H - B) / 2.0,
        (T + H - B) / 2.0
    );
    for (i, s) in series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let mut p: Vec<(f64, f64)> = s.points.iter().copied().filter(|p| p.0 > 0.0 && p.1 > 0.0).collect();
        p.sort_by(|a, b| a.0.total_cmp(&b.0));
        let line: Vec<String> = p.iter().map(|(x, y)| format!("{:.1},{:.1}", px(*x), py(*y))).collect();
        let _ = write!(
            svg,
            "<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"2\" points=\"{}\"/>",
            line.join(" ")
        );
        for (x, y) in &p {
            let _ = write!(
                svg,
                "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\" fill=\"{color}\"><title>{}: {} at {}</title></circle>",
                px(*x),
                py(*y),
                esc(&s.name),
                esc(&fmt_y(*y)),
                esc(&fmt_x(*x))
            );
        }
        #[allow(clippy::cast_precision_loss)]
        let ly = T + 12.0 + 18.0 * i as f64;
        let _ = write!(
            svg,
            "<rect x=\"{}\" y=\"{}\" width=\"12\" height=\"4\" fill=\"{color}\"/>\
             <text x=\"{}\" y=\"{}\" font-size=\"11\">{}</text>",
            W - R + 12.0,
            ly - 4.0,
            W - R + 30.0,
            ly,
            esc(&s.name)
        );
    }
    svg.push_str("</svg>");
    svg
}

/// Series per setup (and peer) of `part`/`op`/`cache`, x taken by `x`.
fn series(r: &Results, parts: &[Part], op: Op, cache: Cache, x: fn(&Record) -> usize) -> Vec<Series> {
    let mut out: Vec<Series> = Vec::new();
    for rec in r.records.iter().filter(|x| parts.contains(&x.part) && x.operation == op && x.cache == cache) {
        if rec.sample_count == 0 {
            continue;
        }
        #[allow(clippy::cast_precision_loss)]
        let p = (x(rec) as f64, rec.quantiles.p50_ns as f64);
        match out.iter_mut().find(|s| s.name == rec.setup) {
            Some(s) => s.points.push(p),
            None => out.push(Series { name: rec.setup.clone(), points: vec![p] }),
        }
    }
    out
}

fn by_size(r: &Record) -> usize {
    usize::try_from(r.file_size).unwrap_or(usize::MAX)
}

#[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
fn size_label(x: f64) -> String {
    fmt_size(x.round() as u64)
}

#[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
fn count_label(x: f64) -> String {
    format!("{}", x.round() as u64)
}

fn records_table(html: &mut String, r: &Results) {
    html.push_str(
        "<table><tr><th>part</th><th>setup</th><th>op</th><th>size</th><th>layers</th><th>dirs</th><th>cache</th>\
         <th>n</th><th>p50</th><th>p90</th><th>p99</th><th>max</th><th>pages resident before the call</th></tr>",
    );
    for rec in &r.records {
        let q = &rec.quantiles;
        let check = rec
            .cache_check
            .map_or(String::new(), |c| format!("{}–{} of {}", c.resident_min, c.resident_max, c.file_pages));
        let op = if rec.containers > 1 {
            format!("{} x{}", rec.operation.name(), rec.containers)
        } else {
            rec.operation.name().into()
        };
        let _ = write!(
            html,
            "<tr><td>{:?}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>\
             <td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            rec.part,
            esc(&rec.setup),
            esc(&op),
            fmt_size(rec.file_size),
            rec.layer_depth,
            rec.dir_depth,
            rec.cache.name(),
            rec.sample_count,
            fmt_ns(q.p50_ns),
            fmt_ns(q.p90_ns),
            fmt_ns(q.p99_ns),
            fmt_ns(q.max_ns),
            check
        );
    }
    html.push_str("</table>");
}

/// The whole page; with `after`, a comparison of the two runs is added
/// (and the plots show `after`).
pub fn render(before: &Results, after: Option<&Results>) -> String {
    let r = after.unwrap_or(before);
    let env = &r.environment;
    let mut h = String::from(
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>strata copy_up benchmark</title><style>\
         body{font-family:sans-serif;max-width:1100px;margin:auto;padding:1em}table{border-collapse:collapse;font-size:12px}\
         td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}td:nth-child(-n+3){text-align:left}\
         .agrees{color:#161}.disagrees{color:#b00;font-weight:bold}.not_measured{color:#777}svg{margin:8px 0}</style></head><body>",
    );
    let _ = write!(
        h,
        "<h1>copy_up latency</h1><p>{} ({} scale, {:.0} s) — {}; {} × {}; strata {} ({} build); load average at start {}</p>",
        esc(&r.started),
        esc(&r.scale),
        r.elapsed_s,
        esc(env["kernel"].as_str().unwrap_or("?")),
        env["cpus"],
        esc(env["cpu_model"].as_str().unwrap_or("?")),
        esc(env["strata_version"].as_str().unwrap_or("?")),
        esc(env["strata_profile"].as_str().unwrap_or("?")),
        esc(env["loadavg"].as_str().unwrap_or("?")),
    );
    h.push_str("<h2>Setups</h2>");
    if let Some(s) = &r.storage {
        let _ = write!(h, "<p>storage: {}</p>", esc(s));
    }
    h.push_str(
        "<table><tr><th>setup</th><th>status</th><th>backing filesystem (mount; superblock options)</th>\
         <th>storage (device, model, rotational, scheduler, size)</th></tr>",
    );
    for a in r.setups.iter().chain(&r.peers) {
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&a.name),
            esc(&a.status),
            esc(a.filesystem.as_deref().unwrap_or("-")),
            esc(&a.storage.as_ref().map_or_else(|| "-".to_owned(), super::storage::StorageFacts::describe))
        );
    }
    h.push_str("</table>");
    for f in &r.refused {
        let _ = write!(h, "<p class=\"not_measured\">refused by the driver: {}</p>", esc(f));
    }
    for f in &r.failures {
        let _ = write!(h, "<p class=\"disagrees\">FAILED: {}</p>", esc(f));
    }
    h.push_str(
        "<h2>Physics check</h2><table><tr><th>expectation</th><th>reading</th><th>measured</th><th>note</th></tr>",
    );
    for c in physics::checks(r) {
        let (class, word) = match c.verdict {
            Verdict::Agrees => ("agrees", "agrees"),
            Verdict::Disagrees => ("disagrees", "DISAGREES"),
            Verdict::NotMeasured => ("not_measured", "not measured"),
        };
        let _ = write!(
            h,
            "<tr><td>{}</td><td class=\"{class}\">{word}</td><td>{}</td><td>{}</td></tr>",
            esc(&c.claim),
            esc(&c.measured),
            esc(&c.note)
        );
    }
    h.push_str("</table>");
    if let Some(after) = after {
        h.push_str("<h2>Comparison</h2><p>ratio = second run's p50 / first run's p50; noise bounds = [p25/p75, p75/p25]; a change is called only when the bounds exclude 1.</p>");
        h.push_str("<table><tr><th>case</th><th>before p50</th><th>after p50</th><th>ratio</th><th>bounds</th><th>reading</th></tr>");
        for row in compare::rows(before, after) {
            let (ratio, bounds, verdict) = match row.change {
                Some(c) => (format!("{:.2}", c.ratio), format!("[{:.2}, {:.2}]", c.low, c.high), c.verdict()),
                None => ("-".into(), "-".into(), "-".into()),
            };
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{ratio}</td><td>{bounds}</td><td>{}</td></tr>",
                esc(&compare::case_name(row.before)),
                fmt_ns(row.before.quantiles.p50_ns),
                fmt_ns(row.after.quantiles.p50_ns),
                esc(&verdict)
            );
        }
        h.push_str("</table>");
    }
    h.push_str("<h2>Latency against file size</h2>");
    let fw = [Part::FirstWrite, Part::Peer];
    for (op, cache) in [(Op::Write, Cache::Warm), (Op::Write, Cache::Cold), (Op::Chmod, Cache::Warm)] {
        let title = format!("first {} ({} cache) against file size", op.name(), cache.name());
        h.push_str(&plot(&title, "file size (log)", &series(r, &fw, op, cache, by_size), &size_label));
    }
    h.push_str(&plot(
        "second write (warm) against file size",
        "file size (log)",
        &series(r, &[Part::SecondWrite], Op::SecondWrite, Cache::Warm, by_size),
        &size_label,
    ));
    h.push_str("<h2>Latency against layer depth</h2>");
    for op in [Op::Write, Op::Lookup] {
        let s = series(r, &[Part::LayerDepth], op, Cache::Warm, |x| x.layer_depth);
        h.push_str(&plot(
            &format!("{} of a 4 KiB file in the bottom layer", op.name()),
            "layers (log)",
            &s,
            &count_label,
        ));
    }
    h.push_str("<h2>Latency against directory depth</h2>");
    for op in [Op::Write, Op::Lookup] {
        let s = series(r, &[Part::DirDepth], op, Cache::Warm, |x| x.dir_depth);
        h.push_str(&plot(
            &format!("{} of a 4 KiB file under N directories", op.name()),
            "directory depth (log)",
            &s,
            &count_label,
        ));
    }
    h.push_str("<h2>All cases</h2>");
    records_table(&mut h, r);
    h.push_str("<h2>Method</h2><ul>");
    for m in &r.method {
        let _ = write!(h, "<li>{}</li>", esc(m));
    }
    h.push_str("</ul></body></html>\n");
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plots_are_svg_with_one_line_per_series() {
        let s = vec![
            Series { name: "a<b".into(), points: vec![(4096.0, 1e4), (1048576.0, 1e6)] },
            Series { name: "c".into(), points: vec![(4096.0, 2e4)] },
        ];
        let svg = plot("t", "x", &s, &size_label);
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert_eq!(svg.matches("<circle").count(), 3);
        assert!(svg.contains("a&lt;b") && svg.contains("4 KiB") && svg.contains("1 MiB"));
        assert!(svg.contains("10.0 µs") && svg.contains("1.00 ms"), "{svg}");
        assert!(plot("t", "x", &[], &size_label).contains("no data"));
        let crowded = vec![Series { name: "d".into(), points: vec![(1.0, 1e3), (499.0, 1e3), (500.0, 1e3)] }];
        let svg = plot("t", "x", &crowded, &count_label);
        assert!(svg.contains(">499<") && !svg.contains(">500<"), "overlapping labels");
    }

    #[test]
    fn the_report_has_every_section_and_plot() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/bench/copyup/testdata/tiny.json");
        let r = Results::read(&path).unwrap();
        let html = render(&r, None);
        for needle in [
            "<h2>Setups</h2>",
            "<h2>Physics check</h2>",
            "against file size",
            "against layer depth",
            "against directory depth",
            "not available in this build",
        ] {
            assert!(html.contains(needle), "no {needle:?}");
        }
        assert_eq!(html.matches("<svg").count(), 8);
        assert!(!html.contains("<h2>Comparison</h2>"));
        assert!(render(&r, Some(&r)).contains("<h2>Comparison</h2>"));
    }
}
