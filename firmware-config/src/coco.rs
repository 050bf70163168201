//! The 80 COCO class names the detector reports, in model output order.
//!
//! Embedded from `coco-80.names` (a copy of `shared/models/coco-80.names`,
//! darknet spelling: `motorbike`, `aeroplane`, `sofa`, `tvmonitor`, ...), so
//! rule `classes` can be checked without the model at hand.

const NAMES: &str = include_str!("coco-80.names");

/// The class names, index = class id.
pub fn coco_classes() -> impl Iterator<Item = &'static str> {
    NAMES.lines().map(str::trim).filter(|l| !l.is_empty())
}

/// The class id of `name`, if it is a COCO class.
pub fn coco_class_id(name: &str) -> Option<usize> {
    coco_classes().position(|c| c == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn has_80_names_with_person_first() {
        assert_eq!(coco_classes().count(), 80);
        assert_eq!(coco_class_id("person"), Some(0));
        assert_eq!(coco_class_id("car"), Some(2));
        assert_eq!(coco_class_id("toothbrush"), Some(79));
        assert_eq!(coco_class_id("people"), None);
    }
}
