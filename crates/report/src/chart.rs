//! Charts drawn with plotters, to SVG (for the HTML report) or PNG, from the same code.

use std::sync::Once;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::{Error, Result};

/// The font charts are drawn with (DejaVu Sans, bundled: PNGs need its glyphs; SVGs name
/// `sans-serif` and the browser draws the text, but plotters measures labels with it).
static FONT: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");
static REGISTER: Once = Once::new();

fn register_font() {
    REGISTER.call_once(|| {
        // The bundled file is a valid font: a failure here is a broken build, caught by the tests.
        let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, FONT);
    });
}

/// One named series of values, one per category (`None`: no value there).
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// The legend's name.
    pub name: String,
    /// One value per category or x position.
    pub values: Vec<Option<f64>>,
}

/// What a chart shows.
#[derive(Debug, Clone, PartialEq)]
pub enum Plot {
    /// Bars per category, one bar per series side by side.
    Bars {
        /// Category labels along x.
        categories: Vec<String>,
        /// The series (one colour each).
        series: Vec<Series>,
        /// What y measures.
        y_desc: String,
    },
    /// Lines over ordered x labels (days), one line per series.
    Lines {
        /// The x labels in order.
        x: Vec<String>,
        /// The series (one colour each).
        series: Vec<Series>,
        /// What y measures.
        y_desc: String,
    },
    /// Points (x, y).
    Scatter {
        /// The points.
        points: Vec<(f64, f64)>,
        /// What x measures.
        x_desc: String,
        /// What y measures.
        y_desc: String,
    },
}

/// A chart: a title and a plot.
#[derive(Debug, Clone, PartialEq)]
pub struct Chart {
    /// Drawn above the plot.
    pub title: String,
    /// The data.
    pub plot: Plot,
}

/// Width and height charts are drawn at, in pixels (bars with long category labels are taller
/// by the labels' length).
pub const SIZE: (u32, u32) = (760, 380);

/// Category labels read across up to this many characters in all; longer run downwards.
const ACROSS_CHARS: usize = 70;

/// The height of the x labels of bars over `categories`, and whether they run downwards.
fn bar_labels(categories: &[String]) -> (u32, bool) {
    let longest = categories.iter().map(|c| c.chars().count()).max().unwrap_or(0);
    if longest * categories.len() > ACROSS_CHARS {
        (7 * longest as u32 + 16, true)
    } else {
        (36, false)
    }
}

impl Chart {
    /// True when the chart has nothing to draw (it then says "no rows").
    pub fn is_empty(&self) -> bool {
        match &self.plot {
            Plot::Bars { categories, .. } => categories.is_empty(),
            Plot::Lines { x, .. } => x.is_empty(),
            Plot::Scatter { points, .. } => points.is_empty(),
        }
    }

    /// Width and height in pixels.
    pub fn size(&self) -> (u32, u32) {
        match &self.plot {
            Plot::Bars { categories, .. } if !categories.is_empty() => {
                let (labels, _) = bar_labels(categories);
                (SIZE.0, SIZE.1 - 36 + labels)
            }
            _ => SIZE,
        }
    }

    /// The chart as an SVG document.
    pub fn svg(&self) -> Result<String> {
        register_font();
        let mut out = String::new();
        {
            let root = SVGBackend::with_string(&mut out, self.size()).into_drawing_area();
            self.draw(&root)?;
            root.present().map_err(draw_error)?;
        }
        Ok(out)
    }

    /// The chart as a PNG image.
    pub fn png(&self) -> Result<Vec<u8>> {
        register_font();
        let (w, h) = self.size();
        let mut pixels = vec![0u8; (w * h * 3) as usize];
        {
            let root = BitMapBackend::with_buffer(&mut pixels, (w, h)).into_drawing_area();
            self.draw(&root)?;
            root.present().map_err(draw_error)?;
        }
        let mut out = Vec::new();
        let mut encoder = png::Encoder::new(&mut out, w, h);
        encoder.set_color(png::ColorType::Rgb);
        encoder.set_depth(png::BitDepth::Eight);
        let mut writer = encoder.write_header().map_err(|e| Error::Draw(e.to_string()))?;
        writer.write_image_data(&pixels).map_err(|e| Error::Draw(e.to_string()))?;
        writer.finish().map_err(|e| Error::Draw(e.to_string()))?;
        Ok(out)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()> {
        root.fill(&WHITE).map_err(draw_error)?;
        if self.is_empty() {
            let style = ("sans-serif", 18).into_font().color(&BLACK);
            root.draw(&Text::new(self.title.clone(), (20, 20), style.clone())).map_err(draw_error)?;
            let muted = ("sans-serif", 16).into_font().color(&RGBColor(110, 110, 110));
            root.draw(&Text::new("no rows", (20, 60), muted)).map_err(draw_error)?;
            return Ok(());
        }
        match &self.plot {
            Plot::Bars { categories, series, y_desc } => self.bars(root, categories, series, y_desc),
            Plot::Lines { x, series, y_desc } => self.lines(root, x, series, y_desc),
            Plot::Scatter { points, x_desc, y_desc } => self.scatter(root, points, x_desc, y_desc),
        }
    }

    /// What every chart starts from: its title, margins, and room for the axes' labels.
    fn frame<'a, 'b, DB: DrawingBackend>(
        &self,
        root: &'a DrawingArea<DB, Shift>,
        x_label_area: u32,
    ) -> ChartBuilder<'a, 'b, DB> {
        let mut builder = ChartBuilder::on(root);
        builder
            .caption(&self.title, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(x_label_area)
            .y_label_area_size(64);
        builder
    }

    fn bars<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
        categories: &[String],
        series: &[Series],
        y_desc: &str,
    ) -> Result<()> {
        // One slot per bar and one empty slot between categories; the category's label sits
        // under its middle bar.
        let per = series.len().max(1) + 1;
        let slots = categories.len() * per;
        let top = y_top(series.iter().flat_map(|s| s.values.iter().flatten().copied()));
        // Long or many labels run downwards from their tick; a few short ones read across.
        let (label_area, vertical) = bar_labels(categories);
        let mut chart = self
            .frame(root, label_area)
            .build_cartesian_2d((0..slots - 1).into_segmented(), 0f64..top)
            .map_err(draw_error)?;
        let middle = (per - 1) / 2;
        let label = |v: &SegmentValue<usize>| match v {
            SegmentValue::CenterOf(i) | SegmentValue::Exact(i) if !vertical && i % per == middle => {
                categories.get(i / per).cloned().unwrap_or_default()
            }
            _ => String::new(),
        };
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(slots)
            .x_label_formatter(&label)
            .x_label_style(("sans-serif", 12))
            .y_desc(y_desc)
            .draw()
            .map_err(draw_error)?;
        if vertical {
            // Drawn here rather than by the mesh, which centres a label on its tick: a label
            // running downwards starts just under its tick.
            let style = ("sans-serif", 12)
                .into_font()
                .transform(FontTransform::Rotate90)
                .into_text_style(root)
                .pos(Pos::new(HPos::Left, VPos::Center));
            for (i, category) in categories.iter().enumerate() {
                let (x, y) = chart.backend_coord(&(SegmentValue::CenterOf(i * per + middle), 0.0));
                root.draw(&Text::new(category.clone(), (x, y + 8), style.clone())).map_err(draw_error)?;
            }
        }
        for (s, one) in series.iter().enumerate() {
            let color = Palette99::pick(s).to_rgba();
            let bars = one.values.iter().enumerate().filter_map(move |(c, v)| {
                let slot = c * per + s;
                v.map(|v| {
                    let mut bar = Rectangle::new(
                        [(SegmentValue::Exact(slot), 0.0), (SegmentValue::Exact(slot + 1), v)],
                        color.filled(),
                    );
                    bar.set_margin(0, 0, 1, 1);
                    bar
                })
            });
            chart.draw_series(bars).map_err(draw_error)?.label(one.name.clone()).legend(swatch(color));
        }
        legend(&mut chart, series.len())
    }

    fn lines<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
        x: &[String],
        series: &[Series],
        y_desc: &str,
    ) -> Result<()> {
        let top = y_top(series.iter().flat_map(|s| s.values.iter().flatten().copied()));
        let mut chart = self
            .frame(root, 40)
            .build_cartesian_2d((0..x.len().max(2) - 1).into_segmented(), 0f64..top)
            .map_err(draw_error)?;
        let every = x.len().div_ceil(8).max(1);
        let label = |v: &SegmentValue<usize>| match v {
            SegmentValue::CenterOf(i) if i % every == 0 => x.get(*i).cloned().unwrap_or_default(),
            _ => String::new(),
        };
        chart.configure_mesh().x_labels(x.len()).x_label_formatter(&label).y_desc(y_desc).draw().map_err(draw_error)?;
        for (s, one) in series.iter().enumerate() {
            let color = Palette99::pick(s).to_rgba();
            let points: Vec<(SegmentValue<usize>, f64)> =
                one.values.iter().enumerate().filter_map(|(i, v)| v.map(|v| (SegmentValue::CenterOf(i), v))).collect();
            chart.draw_series(LineSeries::new(points.clone(), color.stroke_width(2))).map_err(draw_error)?;
            chart
                .draw_series(points.into_iter().map(|p| Circle::new(p, 3, color.filled())))
                .map_err(draw_error)?
                .label(one.name.clone())
                .legend(swatch(color));
        }
        legend(&mut chart, series.len())
    }

    fn scatter<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
        points: &[(f64, f64)],
        x_desc: &str,
        y_desc: &str,
    ) -> Result<()> {
        let right = y_top(points.iter().map(|p| p.0));
        let top = y_top(points.iter().map(|p| p.1));
        let mut chart = self.frame(root, 44).build_cartesian_2d(0f64..right, 0f64..top).map_err(draw_error)?;
        chart.configure_mesh().x_desc(x_desc).y_desc(y_desc).draw().map_err(draw_error)?;
        let color = Palette99::pick(0).to_rgba().mix(0.6);
        chart.draw_series(points.iter().map(|&p| Circle::new(p, 3, color.filled()))).map_err(draw_error)?;
        // The diagonal: a visit's exercise cannot exceed its time in the gym.
        let edge = right.min(top);
        chart.draw_series(LineSeries::new([(0.0, 0.0), (edge, edge)], BLACK.mix(0.4))).map_err(draw_error)?;
        Ok(())
    }
}

/// A series' square in the legend.
fn swatch(color: RGBAColor) -> impl Fn((i32, i32)) -> Rectangle<(i32, i32)> {
    move |(x, y)| Rectangle::new([(x, y - 5), (x + 10, y + 5)], color.filled())
}

fn legend<'a, DB: DrawingBackend + 'a, X: Ranged, Y: Ranged>(
    chart: &mut ChartContext<'a, DB, Cartesian2d<X, Y>>,
    series: usize,
) -> Result<()> {
    if series > 1 {
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK.mix(0.3))
            .draw()
            .map_err(draw_error)?;
    }
    Ok(())
}

/// The top of the y axis: a tenth above the largest value, at least 1.
fn y_top(values: impl Iterator<Item = f64>) -> f64 {
    let max = values.filter(|v| v.is_finite()).fold(0.0f64, f64::max);
    if max <= 0.0 {
        1.0
    } else {
        max * 1.1
    }
}

fn draw_error<E: std::error::Error + Send + Sync>(e: DrawingAreaErrorKind<E>) -> Error {
    Error::Draw(e.to_string())
}
