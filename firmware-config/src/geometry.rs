//! Plane geometry for zones, lines and grid polygons.
//!
//! Points are `[x, y]`. For camera zones and lines these are normalised
//! image coordinates (0..1, origin top-left, y down); for grids they are
//! longitude and latitude in degrees. The functions here only need a plane
//! and take an `eps` where touching must count as inside.
//!
//! Guarantees: [`check_simple`] accepts exactly the polygons with at least
//! three distinct vertices, non-zero area and no two edges meeting except
//! adjacent edges at their shared vertex; [`locate`] is exact up to `eps`
//! on the boundary (a point within `eps` of an edge is `OnBoundary`).

/// A point `[x, y]`.
pub type Point = [f64; 2];

/// Twice the signed area of a polygon (shoelace); positive when the
/// vertices run counter-clockwise in a y-up plane.
pub fn signed_area2(poly: &[Point]) -> f64 {
    let n = poly.len();
    (0..n)
        .map(|i| {
            let a = poly[i];
            let b = poly[(i + 1) % n];
            a[0] * b[1] - b[0] * a[1]
        })
        .sum()
}

/// Cross product of `b - a` and `c - a`: which side of `a -> b` `c` is on.
/// In image coordinates (y down) a negative value is the left of `a -> b`
/// as seen on screen.
pub fn cross(a: Point, b: Point, c: Point) -> f64 {
    (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0])
}

fn on_segment(a: Point, b: Point, p: Point) -> bool {
    p[0] >= a[0].min(b[0])
        && p[0] <= a[0].max(b[0])
        && p[1] >= a[1].min(b[1])
        && p[1] <= a[1].max(b[1])
}

/// Whether closed segments `a1-a2` and `b1-b2` share at least one point.
pub fn segments_intersect(a1: Point, a2: Point, b1: Point, b2: Point) -> bool {
    let d1 = cross(b1, b2, a1);
    let d2 = cross(b1, b2, a2);
    let d3 = cross(a1, a2, b1);
    let d4 = cross(a1, a2, b2);
    if ((d1 > 0.0 && d2 < 0.0) || (d1 < 0.0 && d2 > 0.0))
        && ((d3 > 0.0 && d4 < 0.0) || (d3 < 0.0 && d4 > 0.0))
    {
        return true;
    }
    (d1 == 0.0 && on_segment(b1, b2, a1))
        || (d2 == 0.0 && on_segment(b1, b2, a2))
        || (d3 == 0.0 && on_segment(a1, a2, b1))
        || (d4 == 0.0 && on_segment(a1, a2, b2))
}

/// Checks that a polygon (implicitly closed; do not repeat the first point)
/// is simple. Returns a short reason when it is not.
pub fn check_simple(poly: &[Point]) -> Result<(), String> {
    let n = poly.len();
    if n < 3 {
        return Err(format!("a polygon needs at least 3 points, found {n}"));
    }
    if let Some(i) = poly
        .iter()
        .position(|p| !p[0].is_finite() || !p[1].is_finite())
    {
        return Err(format!("point {i} is not a finite number"));
    }
    for i in 0..n {
        let j = (i + 1) % n;
        if poly[i] == poly[j] {
            return Err(format!("points {i} and {j} are the same"));
        }
    }
    if signed_area2(poly).abs() <= f64::EPSILON * 16.0 {
        return Err("the polygon has zero area".to_owned());
    }
    for i in 0..n {
        let (a1, a2) = (poly[i], poly[(i + 1) % n]);
        for j in i + 1..n {
            let (b1, b2) = (poly[j], poly[(j + 1) % n]);
            let adjacent = j == i + 1 || (i == 0 && j == n - 1);
            if adjacent {
                // Adjacent edges share one vertex; they must not fold back onto each other.
                let (shared, other_a, other_b) = if j == i + 1 {
                    (a2, a1, b2)
                } else {
                    (a1, a2, b1)
                };
                if cross(shared, other_a, other_b) == 0.0
                    && (other_a[0] - shared[0]) * (other_b[0] - shared[0])
                        + (other_a[1] - shared[1]) * (other_b[1] - shared[1])
                        > 0.0
                {
                    return Err(format!("edges {i} and {j} fold back onto each other"));
                }
                continue;
            }
            if segments_intersect(a1, a2, b1, b2) {
                return Err(format!(
                    "edges {i} and {j} cross or touch (the polygon intersects itself)"
                ));
            }
        }
    }
    Ok(())
}

/// Where a point is relative to a polygon.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Location {
    /// Strictly inside.
    Inside,
    /// Within `eps` of an edge.
    OnBoundary,
    /// Outside.
    Outside,
}

fn dist_to_segment(p: Point, a: Point, b: Point) -> f64 {
    let (dx, dy) = (b[0] - a[0], b[1] - a[1]);
    let len2 = dx * dx + dy * dy;
    let t = if len2 == 0.0 {
        0.0
    } else {
        (((p[0] - a[0]) * dx + (p[1] - a[1]) * dy) / len2).clamp(0.0, 1.0)
    };
    let (qx, qy) = (a[0] + t * dx, a[1] + t * dy);
    ((p[0] - qx).powi(2) + (p[1] - qy).powi(2)).sqrt()
}

/// Locates `p` relative to `poly` (even-odd rule, boundary within `eps`).
pub fn locate(p: Point, poly: &[Point], eps: f64) -> Location {
    let n = poly.len();
    if n == 0 {
        return Location::Outside;
    }
    let mut inside = false;
    for i in 0..n {
        let a = poly[i];
        let b = poly[(i + 1) % n];
        if dist_to_segment(p, a, b) <= eps {
            return Location::OnBoundary;
        }
        if (a[1] > p[1]) != (b[1] > p[1]) {
            let x = a[0] + (p[1] - a[1]) * (b[0] - a[0]) / (b[1] - a[1]);
            if p[0] < x {
                inside = !inside;
            }
        }
    }
    if inside {
        Location::Inside
    } else {
        Location::Outside
    }
}

/// Whether every vertex of `child` is inside `parent` or on its boundary,
/// and no edge midpoint of `child` is outside (which catches a child that
/// spans a notch of a non-convex parent). Returns the first offending
/// vertex index otherwise.
pub fn check_within(child: &[Point], parent: &[Point], eps: f64) -> Result<(), usize> {
    let n = child.len();
    for i in 0..n {
        if locate(child[i], parent, eps) == Location::Outside {
            return Err(i);
        }
        let a = child[i];
        let b = child[(i + 1) % n];
        let mid = [(a[0] + b[0]) / 2.0, (a[1] + b[1]) / 2.0];
        if locate(mid, parent, eps) == Location::Outside {
            return Err(i);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SQUARE: [Point; 4] = [[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]];

    #[test]
    fn accepts_simple_and_rejects_bow_tie() {
        assert!(check_simple(&SQUARE).is_ok());
        let bow = [[0.0, 0.0], [1.0, 1.0], [1.0, 0.0], [0.0, 1.0]];
        assert!(check_simple(&bow).is_err());
    }

    #[test]
    fn rejects_degenerate_polygons() {
        assert!(check_simple(&[[0.0, 0.0], [1.0, 1.0]]).is_err());
        assert!(
            check_simple(&[[0.0, 0.0], [0.5, 0.5], [1.0, 1.0]]).is_err(),
            "collinear"
        );
        assert!(check_simple(&[[0.0, 0.0], [0.0, 0.0], [1.0, 1.0], [1.0, 0.0]]).is_err());
        // A vertex touching a non-adjacent edge.
        let touch = [[0.0, 0.0], [2.0, 0.0], [2.0, 2.0], [1.0, 0.0], [0.0, 2.0]];
        assert!(check_simple(&touch).is_err());
    }

    #[test]
    fn locates_points_with_boundary_tolerance() {
        assert_eq!(locate([0.5, 0.5], &SQUARE, 1e-9), Location::Inside);
        assert_eq!(locate([1.0, 0.5], &SQUARE, 1e-9), Location::OnBoundary);
        assert_eq!(
            locate([1.0 + 1e-12, 0.5], &SQUARE, 1e-9),
            Location::OnBoundary
        );
        assert_eq!(locate([1.1, 0.5], &SQUARE, 1e-9), Location::Outside);
    }

    #[test]
    fn child_sharing_edges_is_within_parent() {
        let half = [[0.0, 0.0], [0.5, 0.0], [0.5, 1.0], [0.0, 1.0]];
        assert!(check_within(&half, &SQUARE, 1e-9).is_ok());
        let out = [[0.5, 0.0], [1.5, 0.0], [1.5, 1.0], [0.5, 1.0]];
        assert_eq!(check_within(&out, &SQUARE, 1e-9), Err(1));
        // An L-shaped parent and a child spanning its notch with all vertices on the boundary.
        let l = [
            [0.0, 0.0],
            [2.0, 0.0],
            [2.0, 1.0],
            [1.0, 1.0],
            [1.0, 2.0],
            [0.0, 2.0],
        ];
        let across = [[1.0, 1.0], [2.0, 1.0], [1.0, 2.0]];
        assert!(check_within(&across, &l, 1e-9).is_err());
    }
}
