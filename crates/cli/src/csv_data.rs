//! Reading a CSV time series with polars: one optional date column and
//! numeric columns, with errors that name the file, the column and the row.
//!
//! Rows are numbered from 1 for the first data row; the file line is the row
//! plus one (the header is line 1).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use polars::prelude::*;

use crate::dates::parse_iso_time;

/// What a non-date column holds.
#[derive(Clone, Debug)]
pub enum ColumnKind {
    /// Numbers (integers read as `f64`); `None` for an empty cell.
    Numeric(Vec<Option<f64>>),
    /// Mostly numbers, but row `row` (0-based) holds `value`, which is not one.
    BadText { row: usize, value: String },
    /// Text that is not numbers at all (a label column): never a feature.
    Text { example: String },
    /// Another type polars inferred (e.g. booleans).
    Other { dtype: String },
}

/// The date column: its name, the cells as text, and their day numbers
/// when the cells are ISO dates (`YYYY-MM-DD`, optionally with a time).
/// A column with no ISO date is a column of labels (no order check); one
/// with some must have only ISO dates.
#[derive(Clone, Debug)]
pub struct DateColumn {
    pub name: String,
    pub labels: Vec<String>,
    /// Days since 1970-01-01 (time of day as a fraction).
    pub days: Option<Vec<f64>>,
}

/// A CSV file read into columns.
#[derive(Clone, Debug)]
pub struct Table {
    pub path: PathBuf,
    pub rows: usize,
    pub date: Option<DateColumn>,
    /// Every non-date column, in file order.
    pub columns: Vec<(String, ColumnKind)>,
}

/// `row 3 (line 4)` for the 0-based data row `i`.
pub fn row_ref(i: usize) -> String {
    format!("row {} (line {})", i + 1, i + 2)
}

const DATE_NAMES: [&str; 5] = ["date", "datetime", "time", "timestamp", "day"];

impl Table {
    /// Reads `path`. `date_column`: the name of the date column, or `None`
    /// to take a column named date/datetime/time/timestamp/day, else the
    /// first column when it holds text; a table may have no date column.
    ///
    /// Errors: a missing or empty file, a malformed CSV, no data rows, an
    /// unknown date column, a missing date, dates out of order.
    pub fn read(path: &Path, date_column: Option<&str>) -> Result<Self> {
        let shown = path.display();
        let meta = std::fs::metadata(path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => anyhow!("{shown}: no such file"),
            _ => anyhow!("{shown}: cannot read: {e}"),
        })?;
        if meta.is_dir() {
            bail!("{shown}: is a folder, not a CSV file");
        }
        if meta.len() == 0 {
            bail!("{shown}: empty file");
        }
        let df = CsvReadOptions::default()
            .with_has_header(true)
            .with_infer_schema_length(None)
            .try_into_reader_with_file_path(Some(path.to_path_buf()))
            .and_then(|r| r.finish())
            .map_err(|e| {
                let first = e.to_string();
                let first = first.lines().next().unwrap_or("").to_string();
                anyhow!("{shown}: cannot read as CSV: {first}")
            })?;
        let rows = df.height();
        if df.width() == 0 {
            bail!("{shown}: no columns");
        }
        if rows == 0 {
            bail!("{shown}: no data rows (only a header)");
        }
        let cols = df.get_columns();
        let names: Vec<String> = cols.iter().map(|c| c.name().to_string()).collect();

        let date_idx = match date_column {
            Some(name) => Some(
                names
                    .iter()
                    .position(|n| n == name)
                    .ok_or_else(|| unknown_column(path, name, &names))?,
            ),
            None => names
                .iter()
                .position(|n| DATE_NAMES.contains(&n.trim().to_ascii_lowercase().as_str()))
                .or_else(|| {
                    matches!(column_kind(&cols[0]), Ok(ColumnKind::Text { .. })).then_some(0)
                }),
        };

        let date = match date_idx {
            None => None,
            Some(i) => Some(read_dates(path, &cols[i])?),
        };
        let mut columns = Vec::new();
        for (i, c) in cols.iter().enumerate() {
            if Some(i) == date_idx {
                continue;
            }
            let kind = column_kind(c).with_context(|| format!("{shown}: column {:?}", names[i]))?;
            columns.push((names[i].clone(), kind));
        }
        Ok(Self {
            path: path.to_path_buf(),
            rows,
            date,
            columns,
        })
    }

    /// Names of every column that is meant to hold numbers (including one
    /// with a bad cell, which [`Table::series`] reports), in file order.
    pub fn numeric_names(&self) -> Vec<String> {
        self.columns
            .iter()
            .filter(|(_, k)| matches!(k, ColumnKind::Numeric(_) | ColumnKind::BadText { .. }))
            .map(|(n, _)| n.clone())
            .collect()
    }

    /// Every column name, the date column first.
    pub fn all_names(&self) -> Vec<String> {
        self.date
            .iter()
            .map(|d| d.name.clone())
            .chain(self.columns.iter().map(|(n, _)| n.clone()))
            .collect()
    }

    /// The values of column `name`, all finite and within f32's range (the
    /// network computes in f32). Errors name the file, the column and the
    /// row: an unknown column, the date column, a text column, a cell that
    /// is not a number, an empty cell, NaN, infinity, or a magnitude beyond
    /// f32's (about 3.4e38).
    pub fn series(&self, name: &str) -> Result<Vec<f64>> {
        let shown = self.path.display();
        if self.date.as_ref().is_some_and(|d| d.name == name) {
            bail!("{shown}: column {name:?} is the date column, not a numeric column");
        }
        let kind = self
            .columns
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, k)| k)
            .ok_or_else(|| unknown_column(&self.path, name, &self.all_names()))?;
        match kind {
            ColumnKind::Numeric(v) => v
                .iter()
                .enumerate()
                .map(|(i, x)| match x {
                    Some(x) if x.is_finite() && x.abs() <= f64::from(f32::MAX) => Ok(*x),
                    Some(x) if x.is_finite() => bail!(
                        "{shown}: column {name:?}, {}: {x} is beyond the range of f32 (about ±3.4e38)",
                        row_ref(i)
                    ),
                    Some(x) => bail!(
                        "{shown}: column {name:?}, {}: {x} is not a finite number",
                        row_ref(i)
                    ),
                    None => bail!("{shown}: column {name:?}, {}: missing value", row_ref(i)),
                })
                .collect(),
            ColumnKind::BadText { row, value } => {
                bail!(
                    "{shown}: column {name:?}, {}: not a number: {value:?}",
                    row_ref(*row)
                )
            }
            ColumnKind::Text { example } => {
                bail!("{shown}: column {name:?} is not numeric (it holds text such as {example:?})")
            }
            ColumnKind::Other { dtype } => {
                bail!("{shown}: column {name:?} is not numeric (type {dtype})")
            }
        }
    }
}

fn unknown_column(path: &Path, name: &str, names: &[String]) -> anyhow::Error {
    anyhow!(
        "{}: no column {name:?} (columns: {})",
        path.display(),
        names.join(", ")
    )
}

fn parse_number(s: &str) -> Option<f64> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    s.parse::<f64>().ok()
}

fn column_kind(c: &Column) -> Result<ColumnKind> {
    let dtype = c.dtype();
    if dtype.is_primitive_numeric() {
        let f = c.cast(&DataType::Float64)?;
        return Ok(ColumnKind::Numeric(f.f64()?.into_iter().collect()));
    }
    if *dtype == DataType::String {
        let s = c.str()?;
        let any_number = s.into_iter().flatten().any(|v| parse_number(v).is_some());
        if any_number {
            // A numeric column with a bad cell: find the first one. (An
            // empty cell is read as null and reported as missing.)
            let mut values = Vec::with_capacity(s.len());
            for (i, v) in s.into_iter().enumerate() {
                match v {
                    None => values.push(None),
                    Some(v) if v.trim().is_empty() => values.push(None),
                    Some(v) => match parse_number(v) {
                        Some(x) => values.push(Some(x)),
                        None => {
                            return Ok(ColumnKind::BadText {
                                row: i,
                                value: v.to_string(),
                            });
                        }
                    },
                }
            }
            return Ok(ColumnKind::Numeric(values));
        }
        let example = s.into_iter().flatten().next().unwrap_or("").to_string();
        return Ok(ColumnKind::Text { example });
    }
    if *dtype == DataType::Null {
        // Every cell empty.
        return Ok(ColumnKind::Numeric(vec![None; c.len()]));
    }
    Ok(ColumnKind::Other {
        dtype: dtype.to_string(),
    })
}

fn read_dates(path: &Path, c: &Column) -> Result<DateColumn> {
    let name = c.name().to_string();
    let s = c.cast(&DataType::String)?;
    let mut labels = Vec::with_capacity(s.len());
    for (i, v) in s.str()?.into_iter().enumerate() {
        match v {
            Some(v) if !v.trim().is_empty() => labels.push(v.trim().to_string()),
            _ => bail!(
                "{}: column {name:?}, {}: missing date",
                path.display(),
                row_ref(i)
            ),
        }
    }
    let parsed: Vec<Option<f64>> = labels.iter().map(|l| parse_iso_time(l)).collect();
    let days: Option<Vec<f64>> = if parsed.iter().any(Option::is_some) {
        // Dates: every one must parse, or the order check would be off.
        if let Some(i) = parsed.iter().position(Option::is_none) {
            let example = parsed
                .iter()
                .position(Option::is_some)
                .map_or("", |k| labels[k].as_str());
            bail!(
                "{}: column {name:?}, {}: {:?} is not a date like the others (YYYY-MM-DD, as {example:?})",
                path.display(),
                row_ref(i),
                labels[i]
            );
        }
        Some(parsed.into_iter().flatten().collect())
    } else {
        None
    };
    if let Some(days) = &days {
        if let Some(i) = days.windows(2).position(|w| w[1] <= w[0]) {
            bail!(
                "{}: column {name:?}, {}: dates must increase ({} comes after {}); sort the file by date",
                path.display(),
                row_ref(i + 1),
                labels[i + 1],
                labels[i]
            );
        }
    }
    Ok(DateColumn { name, labels, days })
}
