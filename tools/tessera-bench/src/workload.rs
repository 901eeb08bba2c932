//! Workloads in YCSB's property format (`key=value` lines, `#` comments) with the core
//! presets A–F, and the operation mix they define.

use rand::{Rng, RngExt};
use std::collections::BTreeMap;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Op {
    Read,
    Update,
    Insert,
    Scan,
    ReadModifyWrite,
}

impl Op {
    pub fn name(self) -> &'static str {
        match self {
            Op::Read => "READ",
            Op::Update => "UPDATE",
            Op::Insert => "INSERT",
            Op::Scan => "SCAN",
            Op::ReadModifyWrite => "READ-MODIFY-WRITE",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Workload {
    pub record_count: u64,
    pub operation_count: u64,
    pub field_count: usize,
    pub field_length: usize,
    pub read: f64,
    pub update: f64,
    pub insert: f64,
    pub scan: f64,
    pub read_modify_write: f64,
    pub request_distribution: String,
    pub max_scan_length: u64,
}

impl Default for Workload {
    fn default() -> Self {
        Workload {
            record_count: 1000,
            operation_count: 1000,
            field_count: 10,
            field_length: 100,
            read: 0.95,
            update: 0.05,
            insert: 0.0,
            scan: 0.0,
            read_modify_write: 0.0,
            request_distribution: "uniform".into(),
            max_scan_length: 1000,
        }
    }
}

/// YCSB's core workloads.
pub fn preset(name: &str) -> Result<Workload, String> {
    let text = match name.to_ascii_lowercase().as_str() {
        "a" => "readproportion=0.5\nupdateproportion=0.5\nrequestdistribution=zipfian",
        "b" => "readproportion=0.95\nupdateproportion=0.05\nrequestdistribution=zipfian",
        "c" => "readproportion=1\nupdateproportion=0\nrequestdistribution=zipfian",
        "d" => "readproportion=0.95\nupdateproportion=0\ninsertproportion=0.05\nrequestdistribution=latest",
        "e" => "readproportion=0\nupdateproportion=0\nscanproportion=0.95\ninsertproportion=0.05\nrequestdistribution=zipfian\nmaxscanlength=100",
        "f" => "readproportion=0.5\nupdateproportion=0\nreadmodifywriteproportion=0.5\nrequestdistribution=zipfian",
        other => return Err(format!("unknown workload preset '{other}' (a-f)")),
    };
    parse(text)
}

/// Parses YCSB properties over the defaults. Unknown keys YCSB defines for other bindings
/// (e.g. `workload`, `readallfields`) are accepted and ignored; values must parse.
pub fn parse(text: &str) -> Result<Workload, String> {
    let mut props = BTreeMap::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (k, v) = line
            .split_once('=')
            .ok_or_else(|| format!("line {}: expected key=value, got '{line}'", n + 1))?;
        props.insert(k.trim().to_string(), v.trim().to_string());
    }
    let mut w = Workload::default();
    let num = |k: &str, v: &str| -> Result<u64, String> {
        v.parse()
            .map_err(|_| format!("{k}: '{v}' is not a whole number"))
    };
    let frac = |k: &str, v: &str| -> Result<f64, String> {
        v.parse::<f64>()
            .ok()
            .filter(|f| (0.0..=1.0).contains(f))
            .ok_or_else(|| format!("{k}: '{v}' is not a proportion between 0 and 1"))
    };
    for (k, v) in &props {
        match k.as_str() {
            "recordcount" => w.record_count = num(k, v)?,
            "operationcount" => w.operation_count = num(k, v)?,
            "fieldcount" => w.field_count = num(k, v)?.max(1) as usize,
            "fieldlength" => w.field_length = num(k, v)? as usize,
            "readproportion" => w.read = frac(k, v)?,
            "updateproportion" => w.update = frac(k, v)?,
            "insertproportion" => w.insert = frac(k, v)?,
            "scanproportion" => w.scan = frac(k, v)?,
            "readmodifywriteproportion" => w.read_modify_write = frac(k, v)?,
            "requestdistribution" => w.request_distribution = v.clone(),
            "maxscanlength" => w.max_scan_length = num(k, v)?.max(1),
            _ => {}
        }
    }
    let total = w.read + w.update + w.insert + w.scan + w.read_modify_write;
    if total <= 0.0 {
        return Err("the operation proportions add up to zero".into());
    }
    crate::distribution::KeyChooser::new(&w.request_distribution, 1)?;
    Ok(w)
}

impl Workload {
    /// Picks the next operation by the proportions.
    pub fn next_op(&self, rng: &mut impl Rng) -> Op {
        let mix = [
            (Op::Read, self.read),
            (Op::Update, self.update),
            (Op::Insert, self.insert),
            (Op::Scan, self.scan),
            (Op::ReadModifyWrite, self.read_modify_write),
        ];
        let total: f64 = mix.iter().map(|(_, p)| p).sum();
        let mut x = rng.random::<f64>() * total;
        for (op, p) in mix {
            if x < p {
                return op;
            }
            x -= p;
        }
        Op::Read
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn presets_and_property_files_parse() {
        let a = preset("A").unwrap();
        assert_eq!((a.read, a.update), (0.5, 0.5));
        assert_eq!(a.request_distribution, "zipfian");
        assert_eq!(preset("d").unwrap().request_distribution, "latest");
        assert_eq!(preset("e").unwrap().max_scan_length, 100);
        let w = parse("# mine\nrecordcount=5000\nfieldcount = 1\nfieldlength=32\nworkload=site.ycsb.workloads.CoreWorkload\n").unwrap();
        assert_eq!(
            (w.record_count, w.field_count, w.field_length),
            (5000, 1, 32)
        );
        assert!(parse("recordcount=lots").is_err());
        assert!(parse("readproportion=2").is_err());
        assert!(parse("requestdistribution=hotspot").is_err());
        assert!(parse("noequals").is_err());
        assert!(preset("g").is_err());
    }

    #[test]
    fn the_mix_follows_the_proportions() {
        let w = preset("b").unwrap();
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        let reads = (0..100_000)
            .filter(|_| w.next_op(&mut rng) == Op::Read)
            .count();
        assert!((94_000..96_000).contains(&reads), "{reads}");
    }
}
