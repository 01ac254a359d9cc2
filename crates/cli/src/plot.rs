//! The PNG figures, drawn with plotters into memory (bitmap backend, text
//! with an embedded DejaVu Sans through ab_glyph: no system font is needed)
//! and encoded with `png`, so that a command writes them only at its end.

use std::sync::Once;

use anyhow::{Result, anyhow};
use plotters::prelude::*;
use plotters::style::{FontStyle, register_font};

use crate::dates::{format_day, format_month};

/// DejaVu Sans (Bitstream Vera licence, see `assets/LICENSE-DejaVu.txt`).
static FONT: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");

fn init_fonts() -> Result<()> {
    static ONCE: Once = Once::new();
    let mut result = Ok(());
    ONCE.call_once(|| {
        for style in [FontStyle::Normal, FontStyle::Bold] {
            if register_font("sans-serif", style, FONT).is_err() {
                result = Err(anyhow!("the embedded font cannot be read"));
            }
        }
    });
    result
}

fn pe<E: std::fmt::Display>(e: E) -> anyhow::Error {
    anyhow!("drawing a plot: {e}")
}

/// Encodes an RGB buffer `[h, w, 3]` as PNG.
pub fn encode_png(rgb: &[u8], w: u32, h: u32) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut out, w, h);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        let mut writer = enc.write_header()?;
        writer.write_image_data(rgb)?;
        writer.finish()?;
    }
    Ok(out)
}

/// Draws with `draw` on a white `w x h` canvas and returns the PNG.
fn render(
    w: u32,
    h: u32,
    draw: impl FnOnce(&DrawingArea<BitMapBackend<'_>, plotters::coord::Shift>) -> Result<()>,
) -> Result<Vec<u8>> {
    init_fonts()?;
    let mut buf = vec![255u8; (w as usize) * (h as usize) * 3];
    {
        let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        root.fill(&WHITE).map_err(pe)?;
        draw(&root)?;
        root.present().map_err(pe)?;
    }
    encode_png(&buf, w, h)
}

/// The horizontal axis of a time series: day numbers (dates) or row indices.
#[derive(Clone, Debug)]
pub struct TimeAxis {
    pub x: Vec<f64>,
    pub dates: bool,
    pub title: String,
}

impl TimeAxis {
    fn label(&self, v: f64) -> String {
        if self.dates {
            // Ticks fall on any day: show the day unless the span is long.
            let span = match (self.x.first(), self.x.last()) {
                (Some(a), Some(b)) => b - a,
                _ => 0.0,
            };
            if span < 3.0 {
                let day = v.floor();
                let secs = ((v - day) * 86_400.0).round() as i64;
                format!(
                    "{} {:02}:{:02}",
                    format_day(day as i64),
                    secs / 3600,
                    secs / 60 % 60
                )
            } else if span < 1000.0 {
                format_day(v.round() as i64)
            } else {
                format_month(v.round() as i64)
            }
        } else {
            format!("{v:.0}")
        }
    }
}

/// A number in at most about 5 characters: 1.2M, 350k, 0.012...
pub fn short_number(v: f64) -> String {
    let a = v.abs();
    if a >= 1e9 {
        format!("{:.3}G", v / 1e9)
    } else if a >= 1e6 {
        format!("{:.3}M", v / 1e6)
    } else if a >= 1e4 {
        format!("{:.0}k", v / 1e3)
    } else if a >= 100.0 || v.fract() == 0.0 {
        format!("{v:.0}")
    } else if a >= 1.0 {
        format!("{v:.1}")
    } else if a >= 0.01 {
        format!("{v:.3}").trim_end_matches('0').to_string()
    } else {
        format!("{v:.1e}")
    }
    .replace(".000G", "G")
    .replace(".000M", "M")
}

fn padded_range(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = values
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    let pad = if hi > lo { 0.05 * (hi - lo) } else { 1.0 };
    (lo - pad, hi + pad)
}

const BLUE_: RGBColor = RGBColor(31, 119, 180);
const ORANGE_: RGBColor = RGBColor(255, 127, 14);
const GREEN_: RGBColor = RGBColor(44, 160, 44);
const RED_: RGBColor = RGBColor(214, 39, 40);
const PURPLE_: RGBColor = RGBColor(148, 103, 189);
const BROWN_: RGBColor = RGBColor(140, 86, 75);
const PINK_: RGBColor = RGBColor(227, 119, 194);
const GREY_: RGBColor = RGBColor(127, 127, 127);
const OLIVE_: RGBColor = RGBColor(188, 189, 34);
const CYAN_: RGBColor = RGBColor(23, 190, 207);
/// matplotlib's tab10 colours.
pub const PALETTE: [RGBColor; 10] = [
    BLUE_, ORANGE_, GREEN_, RED_, PURPLE_, BROWN_, PINK_, GREY_, OLIVE_, CYAN_,
];

/// The seed's data overview: one panel per column on a shared date axis,
/// two panels a row.
pub fn overview(
    axis: &TimeAxis,
    names: &[String],
    columns: &[Vec<f64>],
    title: &str,
) -> Result<Vec<u8>> {
    let ncols = if names.len() > 1 { 2 } else { 1 };
    let nrows = names.len().div_ceil(ncols).max(1);
    let (w, h) = (1400, (180 * nrows as u32 + 60).max(400));
    let (x0, x1) = padded_range(axis.x.iter().copied());
    render(w, h, |root| {
        let root = root.titled(title, ("sans-serif", 22)).map_err(pe)?;
        let panels = root.split_evenly((nrows, ncols));
        for (k, (name, col)) in names.iter().zip(columns).enumerate() {
            let area = &panels[k];
            let bottom = k / ncols == nrows - 1 || k + ncols >= names.len();
            let (y0, y1) = padded_range(col.iter().copied());
            let mut chart = ChartBuilder::on(area)
                .margin(6)
                .margin_right(16)
                .x_label_area_size(if bottom { 28 } else { 6 })
                .y_label_area_size(70)
                .build_cartesian_2d(x0..x1, y0..y1)
                .map_err(pe)?;
            let x_fmt = |v: &f64| {
                if bottom {
                    axis.label(*v)
                } else {
                    String::new()
                }
            };
            chart
                .configure_mesh()
                .x_labels(8)
                .y_labels(4)
                .x_label_formatter(&x_fmt)
                .y_label_formatter(&|v| short_number(*v))
                .y_desc(name.as_str())
                .light_line_style(WHITE.mix(0.0))
                .label_style(("sans-serif", 13))
                .draw()
                .map_err(pe)?;
            chart
                .draw_series(LineSeries::new(
                    axis.x.iter().copied().zip(col.iter().copied()),
                    BLUE_.stroke_width(1),
                ))
                .map_err(pe)?;
        }
        Ok(())
    })
}

/// One line of a chart.
pub struct Line<'a> {
    pub label: String,
    pub x: &'a [f64],
    pub y: &'a [f64],
    pub color: RGBColor,
    pub width: u32,
    pub dashed: bool,
}

/// Options of [`lines`].
pub struct Chart<'a> {
    pub title: &'a str,
    pub x_desc: &'a str,
    pub y_desc: &'a str,
    /// Dates (or row numbers) on the horizontal axis; plain numbers if `None`.
    pub axis: Option<&'a TimeAxis>,
    /// Logarithmic vertical axis (points that are not positive are left out).
    pub log_y: bool,
    /// A dashed vertical marker at `x`, with its legend label.
    pub vline: Option<(f64, &'a str)>,
    pub legend: SeriesLabelPosition,
    pub size: (u32, u32),
}

/// `10^e` as a label: `1e-3` for whole powers, else three digits.
fn power_label(e: f64) -> String {
    if (e - e.round()).abs() < 1e-9 {
        format!("1e{}", e.round() as i64)
    } else {
        format!("{:.1e}", 10f64.powf(e)).replace("e0", "")
    }
}

/// A line chart with a legend. A logarithmic axis is drawn as `log10(y)` on
/// a linear axis labelled in powers of ten (so every decade gets a label).
pub fn lines(c: &Chart<'_>, series: &[Line<'_>]) -> Result<Vec<u8>> {
    let log_y = c.log_y;
    let tf = |y: f64| if log_y { y.log10() } else { y };
    let keep = |y: f64| y.is_finite() && (!log_y || y > 0.0);
    let (x0, x1) = padded_range(series.iter().flat_map(|s| s.x.iter().copied()));
    let (y0, y1) = padded_range(
        series
            .iter()
            .flat_map(|s| s.y.iter().copied())
            .filter(|&y| keep(y))
            .map(tf),
    );
    let x_label = |v: &f64| match c.axis {
        Some(a) => a.label(*v),
        None => short_number(*v),
    };
    let y_label = |v: &f64| {
        if log_y {
            power_label(*v)
        } else {
            short_number(*v)
        }
    };
    render(c.size.0, c.size.1, |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(c.title, ("sans-serif", 22))
            .margin(12)
            .margin_right(24)
            .x_label_area_size(45)
            .y_label_area_size(80)
            .build_cartesian_2d(x0..x1, y0..y1)
            .map_err(pe)?;
        chart
            .configure_mesh()
            .x_labels(10)
            .y_labels(12)
            .x_label_formatter(&x_label)
            .y_label_formatter(&y_label)
            .x_desc(c.x_desc)
            .y_desc(c.y_desc)
            .label_style(("sans-serif", 14))
            .light_line_style(RGBColor(235, 235, 235))
            .draw()
            .map_err(pe)?;
        for s in series {
            let pts: Vec<(f64, f64)> =
                s.x.iter()
                    .copied()
                    .zip(s.y.iter().copied())
                    .filter(|(_, y)| keep(*y))
                    .map(|(x, y)| (x, tf(y)))
                    .collect();
            let style = s.color.stroke_width(s.width);
            let color = s.color;
            let anno = if s.dashed {
                chart
                    .draw_series(DashedLineSeries::new(pts, 6, 4, style))
                    .map_err(pe)?
            } else {
                chart.draw_series(LineSeries::new(pts, style)).map_err(pe)?
            };
            anno.label(s.label.as_str()).legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 24, y)], color.stroke_width(3))
            });
        }
        if let Some((vx, vlabel)) = c.vline {
            chart
                .draw_series(DashedLineSeries::new(
                    [(vx, y0), (vx, y1)],
                    4,
                    4,
                    BLACK.stroke_width(1),
                ))
                .map_err(pe)?
                .label(vlabel)
                .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], BLACK));
        }
        chart
            .configure_series_labels()
            .position(c.legend.clone())
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .label_font(("sans-serif", 15))
            .draw()
            .map_err(pe)?;
        Ok(())
    })
}

/// One panel of [`heatmaps`]: `values[x * ny + y]` in `[0, 1]` (clamped),
/// drawn white (0) to dark blue (1).
pub struct Heatmap<'a> {
    /// The panel's caption.
    pub title: String,
    /// `[nx * ny]`, x-major.
    pub values: &'a [f32],
    /// Cells along the horizontal axis.
    pub nx: usize,
    /// Cells along the vertical axis.
    pub ny: usize,
    /// The horizontal axis' title.
    pub x_desc: &'a str,
    /// The vertical axis' title.
    pub y_desc: &'a str,
    /// A dashed vertical marker at `x` (a cell edge), with what it marks
    /// (named in the panel's caption).
    pub vline: Option<(f64, &'a str)>,
}

/// The colour of `v` in `[0, 1]`: white to matplotlib's darkest Blues.
fn blues(v: f32) -> RGBColor {
    let t = f64::from(v.clamp(0.0, 1.0));
    let mix = |a: u8, b: u8| (f64::from(a) + t * (f64::from(b) - f64::from(a))).round() as u8;
    RGBColor(mix(255, 8), mix(255, 48), mix(255, 107))
}

/// Heatmaps stacked vertically, one per panel, under a common title.
pub fn heatmaps(title: &str, panels: &[Heatmap<'_>], width: u32) -> Result<Vec<u8>> {
    let n = panels.len().max(1);
    let h = 60 + 330 * n as u32;
    render(width, h, |root| {
        let root = root.titled(title, ("sans-serif", 22)).map_err(pe)?;
        let areas = root.split_evenly((n, 1));
        for (p, area) in panels.iter().zip(&areas) {
            let (nx, ny) = (p.nx.max(1) as f64, p.ny.max(1) as f64);
            let caption = match p.vline {
                Some((_, label)) => format!("{} (red dashes: {label})", p.title),
                None => p.title.clone(),
            };
            let mut chart = ChartBuilder::on(area)
                .caption(caption, ("sans-serif", 16))
                .margin(8)
                .margin_right(24)
                .x_label_area_size(40)
                .y_label_area_size(60)
                .build_cartesian_2d(0.0..nx, 0.0..ny)
                .map_err(pe)?;
            chart
                .configure_mesh()
                .disable_mesh()
                .x_labels(12)
                .y_labels(8)
                .x_label_formatter(&|v| short_number(*v))
                .y_label_formatter(&|v| short_number(*v))
                .x_desc(p.x_desc)
                .y_desc(p.y_desc)
                .label_style(("sans-serif", 13))
                .draw()
                .map_err(pe)?;
            let cells = (0..p.nx).flat_map(|x| {
                (0..p.ny).map(move |y| {
                    let v = p.values.get(x * p.ny + y).copied().unwrap_or(0.0);
                    let (x, y) = (x as f64, y as f64);
                    Rectangle::new([(x, y), (x + 1.0, y + 1.0)], blues(v).filled())
                })
            });
            chart.draw_series(cells).map_err(pe)?;
            if let Some((vx, _)) = p.vline {
                chart
                    .draw_series(DashedLineSeries::new(
                        [(vx, 0.0), (vx, ny)],
                        5,
                        4,
                        RED_.stroke_width(2),
                    ))
                    .map_err(pe)?;
            }
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_numbers() {
        assert_eq!(short_number(120_000_000.0), "120M");
        assert_eq!(short_number(35_000.0), "35k");
        assert_eq!(short_number(150.0), "150");
        assert_eq!(short_number(12.34), "12.3");
        assert_eq!(short_number(0.0), "0");
        assert_eq!(short_number(50.0), "50");
        assert_eq!(short_number(0.25), "0.25");
        assert_eq!(power_label(-3.0), "1e-3");
        assert_eq!(power_label(2.5), "3.2e2");
    }

    #[test]
    fn heatmap_renders() {
        let v = vec![0.5f32; 6];
        let png = heatmaps(
            "t",
            &[Heatmap {
                title: "p".into(),
                values: &v,
                nx: 3,
                ny: 2,
                x_desc: "x",
                y_desc: "y",
                vline: Some((1.0, "m")),
            }],
            400,
        )
        .unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        assert_eq!(blues(0.0), RGBColor(255, 255, 255));
        assert_eq!(blues(2.0), RGBColor(8, 48, 107));
    }

    #[test]
    fn renders_text_without_system_fonts() {
        let axis = TimeAxis {
            x: vec![0.0, 1.0, 2.0],
            dates: false,
            title: "row".into(),
        };
        let png = overview(&axis, &["a".into()], &[vec![1.0, 2.0, 1.5]], "t").unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    }
}
