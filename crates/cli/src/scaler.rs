//! Min-max scaling to `[0, 1]`, fitted on the training rows only.

/// Per-column `(x - min) / (max - min)`; a constant column maps to 0.
#[derive(Clone, Debug, PartialEq)]
pub struct MinMax {
    pub min: Vec<f64>,
    pub max: Vec<f64>,
}

impl MinMax {
    /// Fits on `columns[c][rows]`.
    pub fn fit(columns: &[&[f64]], rows: std::ops::Range<usize>) -> Self {
        let (mut min, mut max) = (Vec::new(), Vec::new());
        for col in columns {
            let part = &col[rows.clone()];
            min.push(part.iter().copied().fold(f64::INFINITY, f64::min));
            max.push(part.iter().copied().fold(f64::NEG_INFINITY, f64::max));
        }
        Self { min, max }
    }

    fn range(&self, c: usize) -> f64 {
        let r = self.max[c] - self.min[c];
        if r > 0.0 { r } else { 1.0 }
    }

    /// Scales value `x` of column `c`.
    pub fn scale(&self, c: usize, x: f64) -> f64 {
        (x - self.min[c]) / self.range(c)
    }

    /// Inverse of [`MinMax::scale`].
    pub fn unscale(&self, c: usize, s: f64) -> f64 {
        s * self.range(c) + self.min[c]
    }

    /// Change of scale of column `c` (for differences): `d / range`.
    pub fn scale_delta(&self, c: usize, d: f64) -> f64 {
        d / self.range(c)
    }

    /// Inverse of [`MinMax::scale_delta`].
    pub fn unscale_delta(&self, c: usize, s: f64) -> f64 {
        s * self.range(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fits_on_the_given_rows_only() {
        let a = [1.0, 3.0, 100.0];
        let k = [5.0, 5.0, 5.0];
        let s = MinMax::fit(&[&a, &k], 0..2);
        assert_eq!(s.scale(0, 3.0), 1.0);
        assert_eq!(s.scale(0, 100.0), 49.5); // beyond the training range
        assert_eq!(s.unscale(0, s.scale(0, 2.5)), 2.5);
        assert_eq!(s.scale(1, 5.0), 0.0);
    }
}
