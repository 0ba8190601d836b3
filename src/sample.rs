//! ATTOM-shaped sample data: deterministic files that look like one pull from the ATTOM
//! property-sales API.
//!
//! A real pull is hundreds of extension-less files named `CO{fips} {YYYY-MM-DD}`, each one JSON
//! array of nested records on a single line (no trailing newline). The feed is messy, and the
//! ingest path has to survive exactly that mess, so every quirk below is produced at a known rate:
//!
//! - `location.latitude` / `location.longitude` are JSON strings holding decimals;
//! - dates are unpadded (`2021-1-4`), and `sale.saleTransDate` falls in the file's month;
//! - `summary.yearbuilt` is `0` when unknown (~3%);
//! - `building` is missing entirely (~2%), `lot` is an empty object `{}` (~2%);
//! - `sale.amount.saleamt` is `null` (~1%), `lot.lotSize1` is `null` (~1%);
//! - usually-float fields arrive as ints: `lot.lotSize1` (~2%), `building.rooms.bathstotal` (~3%);
//! - `address.postal1` is a 5-digit string.
//!
//! Generation is seeded per (seed, file index), so any file can be produced on its own and the same
//! [`AttomSpec`] always yields byte-identical files. The [`AttomTotals`] are accumulated while
//! writing, which lets tests compare a table against its source without re-parsing gigabytes.
//! Strings only ever hold ASCII letters, digits, spaces and `-.,`, so nothing needs escaping and
//! the JSON is written by hand for speed.

use crate::rng::{Rng, mix64};
use std::fmt::Write as _;
use std::io;
use std::path::Path;

/// What to generate.
#[derive(Debug, Clone)]
pub struct AttomSpec {
    /// Number of files.
    pub files: usize,
    /// Total number of records, spread over the files (each file at most 10,000 records, like the API cap).
    pub rows: usize,
    /// Seed: the same spec always yields byte-identical files.
    pub seed: u64,
}

/// Totals over the generated records, computed while generating, for tests to compare against the table.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct AttomTotals {
    /// Files written (a file with no records, `[]`, still counts).
    pub files: usize,
    /// Records written.
    pub rows: usize,
    /// Bytes written, over all files.
    pub bytes: u64,
    /// Sum of sale.amount.saleamt over records where it is not null.
    pub sum_sale_price: i64,
    /// Records whose saleamt is null.
    pub null_sale_price: usize,
    /// Records with no `building` object (so `size` maps to null).
    pub missing_building: usize,
    /// Records whose yearbuilt is 0.
    pub zero_year_built: usize,
    /// Sum of latitude * 1e6 rounded to i64, over all records (latitude is always present).
    pub sum_latitude_micro: i64,
}

impl AttomTotals {
    fn merge(&mut self, o: &AttomTotals) {
        self.files += o.files;
        self.rows += o.rows;
        self.bytes += o.bytes;
        self.sum_sale_price += o.sum_sale_price;
        self.null_sale_price += o.null_sale_price;
        self.missing_building += o.missing_building;
        self.zero_year_built += o.zero_year_built;
        self.sum_latitude_micro += o.sum_latitude_micro;
    }
}

/// The ATTOM API returns at most this many records per request, hence per file.
pub const MAX_ROWS_PER_FILE: usize = 10_000;
/// `identifier.Id` of the first record; record `g` of the spec gets `FIRST_ID + g`.
pub const FIRST_ID: u64 = 100_000;
const FIRST_ATTOM_ID: u64 = 150_000_000;
/// Far enough to keep file names 4-digit-year dates and distinct.
const MAX_FILES: usize = COUNTIES.len() * 12 * 1000;

/// Writes the files into `dir` (created if missing) and returns the totals. File names: `CO{fips} {YYYY-MM-DD}`,
/// distinct, with several counties (06037, 06059, 06073, 06065, 06071 ...) and months starting at 2019-01-01.
///
/// Each file is written under a dot-prefixed temporary name and renamed into place, so a watcher
/// never sees a half-written file. Fails with `InvalidInput` if a file would exceed
/// [`MAX_ROWS_PER_FILE`] records or if `files` is 0 while `rows` is not.
pub fn write_attom_files(dir: &Path, spec: &AttomSpec) -> io::Result<AttomTotals> {
    check_spec(spec)?;
    std::fs::create_dir_all(dir)?;
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let written = crate::pool::map_indexed(spec.files, threads, |i| -> io::Result<AttomTotals> {
        let (name, bytes, totals) = attom_file(spec, i);
        let tmp = dir.join(format!(".{name}.partial"));
        let result = std::fs::write(&tmp, &bytes).and_then(|()| std::fs::rename(&tmp, dir.join(&name)));
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result.map(|()| totals)
    });
    let mut total = AttomTotals::default();
    for file in written {
        total.merge(&file.unwrap_or_else(|| Err(io::Error::other("sample generator thread panicked")))?);
    }
    Ok(total)
}

/// Layouts of [`write_one_big_file`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BigLayout {
    /// One record per line.
    Ndjson,
    /// Every leaf field as a column named by its dotted path (`sale.amount.saleamt`).
    Csv,
}

/// Writes one file of at least `min_bytes` (whole blocks of 10,000 records) in `layout` and
/// returns its totals: the workload for streaming a huge file in bounded memory.
pub fn write_one_big_file(path: &Path, layout: BigLayout, min_bytes: u64, seed: u64) -> io::Result<AttomTotals> {
    let spec = AttomSpec { files: MAX_FILES, rows: MAX_FILES * MAX_ROWS_PER_FILE, seed };
    let mut out = io::BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
    let mut totals = AttomTotals::default();
    let mut header: Option<Vec<String>> = None;
    let mut written = 0u64;
    let mut index = 0;
    while written < min_bytes && index < spec.files {
        let (_, bytes, block) = attom_file(&spec, index);
        index += 1;
        let records: Vec<&serde_json::value::RawValue> = serde_json::from_slice(&bytes).map_err(io::Error::other)?;
        let mut text = String::with_capacity(bytes.len());
        for record in records {
            match layout {
                BigLayout::Ndjson => {
                    text.push_str(record.get());
                    text.push('\n');
                }
                BigLayout::Csv => {
                    let value: serde_json::Value = serde_json::from_str(record.get()).map_err(io::Error::other)?;
                    let mut leaves = Vec::new();
                    flatten("", &value, &mut leaves);
                    if header.is_none() {
                        let names = csv_header(&bytes)?;
                        text.push_str(&names.join(","));
                        text.push('\n');
                        header = Some(names);
                    }
                    let columns = header.as_deref().unwrap_or_default();
                    let mut by_name: std::collections::HashMap<String, String> = leaves.into_iter().collect();
                    let row: Vec<String> = columns.iter().map(|c| csv_field(&by_name.remove(c).unwrap_or_default())).collect();
                    text.push_str(&row.join(","));
                    text.push('\n');
                }
            }
        }
        io::Write::write_all(&mut out, text.as_bytes())?;
        written += text.len() as u64;
        totals.merge(&block);
    }
    io::Write::flush(&mut out)?;
    totals.files = 1;
    totals.bytes = written;
    Ok(totals)
}

/// Every leaf path found in a block of records, in order of first appearance.
fn csv_header(block: &[u8]) -> io::Result<Vec<String>> {
    let records: Vec<serde_json::Value> = serde_json::from_slice(block).map_err(io::Error::other)?;
    let mut names = indexmap::IndexSet::new();
    for record in &records {
        let mut leaves = Vec::new();
        flatten("", record, &mut leaves);
        names.extend(leaves.into_iter().map(|(k, _)| k));
    }
    Ok(names.into_iter().collect())
}

/// Leaf values of a JSON value by dotted path, as CSV text (null as empty).
fn flatten(prefix: &str, value: &serde_json::Value, out: &mut Vec<(String, String)>) {
    let join = |key: &str| if prefix.is_empty() { key.to_string() } else { format!("{prefix}.{key}") };
    match value {
        serde_json::Value::Object(map) => map.iter().for_each(|(k, v)| flatten(&join(k), v, out)),
        serde_json::Value::Null => out.push((prefix.to_string(), String::new())),
        serde_json::Value::String(s) => out.push((prefix.to_string(), s.clone())),
        other => out.push((prefix.to_string(), other.to_string())),
    }
}

fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) { format!("\"{}\"", text.replace('"', "\"\"")) } else { text.to_string() }
}

/// One file's bytes (a one-line JSON array) and its totals; `index` is the file index within the spec.
///
/// Panics if `index >= spec.files`. Does not enforce the per-file cap (see [`write_attom_files`]).
pub fn attom_file(spec: &AttomSpec, index: usize) -> (String /*file name*/, Vec<u8>, AttomTotals) {
    assert!(index < spec.files, "file index {index} out of range for a spec of {} files", spec.files);
    let (start, count) = file_rows(spec, index);
    let county_idx = index % COUNTIES.len();
    let county = &COUNTIES[county_idx];
    let months = (index / COUNTIES.len()) as i64;
    let year = 2019 + months / 12;
    let month = (months % 12 + 1) as u32;
    let name = format!("CO{} {year:04}-{month:02}-01", county.fips);
    let ctx = FileCtx {
        county,
        county_co_hash: mix64(0xC0C0_0000 + county_idx as u64),
        year,
        month_start: days_from_civil(year, month, 1),
        days_in_month: days_in_month(year, month),
    };

    let mut rng = Rng::new(spec.seed, index as u64);
    let mut totals = AttomTotals { files: 1, rows: count, ..AttomTotals::default() };
    let mut j = Json { out: String::with_capacity(count * 1500 + 2), comma: false };
    j.out.push('[');
    for r in 0..count {
        if r > 0 {
            j.out.push(',');
        }
        j.comma = false;
        j.out.push('{');
        write_record(&mut j, &mut rng, &ctx, (start + r) as u64, &mut totals);
        j.out.push('}');
    }
    j.out.push(']');
    totals.bytes = j.out.len() as u64;
    (name, j.out.into_bytes(), totals)
}

fn check_spec(spec: &AttomSpec) -> io::Result<()> {
    let bad = |msg: String| Err(io::Error::new(io::ErrorKind::InvalidInput, msg));
    if spec.files == 0 {
        return if spec.rows == 0 { Ok(()) } else { bad(format!("{} rows need at least one file", spec.rows)) };
    }
    if spec.files > MAX_FILES {
        return bad(format!("{} files is more than the {MAX_FILES} distinct names", spec.files));
    }
    if spec.rows.div_ceil(spec.files) > MAX_ROWS_PER_FILE {
        return bad(format!("{} rows over {} files exceeds {MAX_ROWS_PER_FILE} records per file", spec.rows, spec.files));
    }
    Ok(())
}

/// First global row index and row count of file `index`: an even split, the remainder going to the first files.
fn file_rows(spec: &AttomSpec, index: usize) -> (usize, usize) {
    let base = spec.rows / spec.files;
    let rem = spec.rows % spec.files;
    let count = base + usize::from(index < rem);
    (index * base + index.min(rem), count)
}

struct County {
    fips: &'static str,
    name: &'static str,
    muncode: &'static str,
    /// Latitude and longitude ranges in micro-degrees, roughly the county's extent.
    lat: (i64, i64),
    lon: (i64, i64),
    /// Typical dollars per square foot, so prices differ by county like they do in reality.
    price_per_sqft: i64,
    /// (city, first three digits of its zip codes)
    cities: &'static [(&'static str, &'static str)],
}

const COUNTIES: [County; 8] = [
    County {
        fips: "06037",
        name: "Los Angeles",
        muncode: "LA",
        lat: (33_700_000, 34_800_000),
        lon: (-118_950_000, -117_650_000),
        price_per_sqft: 450,
        cities: &[("LOS ANGELES", "900"), ("PASADENA", "911"), ("LONG BEACH", "908"), ("TORRANCE", "905"), ("GLENDALE", "912")],
    },
    County {
        fips: "06059",
        name: "Orange",
        muncode: "OR",
        lat: (33_400_000, 33_950_000),
        lon: (-118_100_000, -117_400_000),
        price_per_sqft: 600,
        cities: &[("ANAHEIM", "928"), ("IRVINE", "926"), ("SANTA ANA", "927"), ("HUNTINGTON BEACH", "926")],
    },
    County {
        fips: "06073",
        name: "San Diego",
        muncode: "SD",
        lat: (32_550_000, 33_500_000),
        lon: (-117_600_000, -116_100_000),
        price_per_sqft: 500,
        cities: &[("SAN DIEGO", "921"), ("CHULA VISTA", "919"), ("OCEANSIDE", "920"), ("ESCONDIDO", "920")],
    },
    County {
        fips: "06065",
        name: "Riverside",
        muncode: "RV",
        lat: (33_430_000, 34_080_000),
        lon: (-117_670_000, -114_430_000),
        price_per_sqft: 280,
        cities: &[("RIVERSIDE", "925"), ("CORONA", "928"), ("TEMECULA", "925"), ("PALM SPRINGS", "922")],
    },
    County {
        fips: "06071",
        name: "San Bernardino",
        muncode: "SB",
        lat: (34_000_000, 35_800_000),
        lon: (-117_800_000, -114_130_000),
        price_per_sqft: 250,
        cities: &[("SAN BERNARDINO", "924"), ("FONTANA", "923"), ("ONTARIO", "917"), ("VICTORVILLE", "923")],
    },
    County {
        fips: "06085",
        name: "Santa Clara",
        muncode: "SC",
        lat: (36_900_000, 37_480_000),
        lon: (-122_200_000, -121_200_000),
        price_per_sqft: 900,
        cities: &[("SAN JOSE", "951"), ("PALO ALTO", "943"), ("SUNNYVALE", "940")],
    },
    County {
        fips: "06001",
        name: "Alameda",
        muncode: "AL",
        lat: (37_450_000, 37_900_000),
        lon: (-122_350_000, -121_550_000),
        price_per_sqft: 700,
        cities: &[("OAKLAND", "946"), ("BERKELEY", "947"), ("FREMONT", "945")],
    },
    County {
        fips: "06067",
        name: "Sacramento",
        muncode: "SA",
        lat: (38_000_000, 38_740_000),
        lon: (-121_860_000, -121_030_000),
        price_per_sqft: 300,
        cities: &[("SACRAMENTO", "958"), ("ELK GROVE", "957"), ("FOLSOM", "956")],
    },
];

const STREETS: [&str; 16] = [
    "OAK",
    "MAPLE",
    "PINE",
    "CEDAR",
    "ELM",
    "WALNUT",
    "SUNSET",
    "MAIN",
    "LINCOLN",
    "WASHINGTON",
    "PALM",
    "VISTA DEL MAR",
    "CAMINO REAL",
    "MISSION",
    "SIERRA MADRE",
    "HILLCREST",
];
const SUFFIXES: [&str; 6] = ["AVE", "ST", "DR", "BLVD", "WAY", "CT"];

struct FileCtx {
    county: &'static County,
    county_co_hash: u64,
    year: i64,
    month_start: i64,
    days_in_month: u32,
}

/// Writes the members of one record (the caller writes the braces).
fn write_record(j: &mut Json, rng: &mut Rng, ctx: &FileCtx, global: u64, totals: &mut AttomTotals) {
    let c = ctx.county;

    j.open("identifier");
    j.int("Id", (FIRST_ID + global) as i64);
    j.str("fips", c.fips);
    let (a, b, d) = (rng.range(1000, 9999), rng.range(1, 999), rng.range(1, 999));
    j.strf("apn", format_args!("{a:04}-{b:03}-{d:03}"));
    j.int("attomId", (FIRST_ATTOM_ID + global) as i64);
    j.close();

    j.open("lot");
    let lot_kind = rng.below(1000);
    if lot_kind >= 20 {
        if lot_kind < 40 {
            // Whole acres come through as JSON ints, not floats.
            let acres = rng.range(1, 5);
            j.int("lotSize1", acres);
            j.int("lotSize2", acres * 43_560);
        } else if lot_kind < 50 {
            j.null("lotSize1");
            j.int("lotSize2", rng.range(2_000, 20_000));
        } else {
            let acres_e4 = rng.range(500, 5_000);
            j.fixed("lotSize1", acres_e4, 4);
            j.int("lotSize2", (acres_e4 * 43_560 + 5_000) / 10_000);
        }
        j.str("pooltype", if rng.below(100) < 80 { "NO POOL" } else { "POOL" });
    }
    j.close();

    let (city, zip3) = *rng.pick(c.cities);
    let zip_tail = rng.range(1, 99);
    j.open("area");
    j.strf("blockNum", format_args!("{}", rng.range(1, 40)));
    j.str("countrySecSubd", c.name);
    j.str("muncode", c.muncode);
    j.str("munname", city);
    j.strf("subdname", format_args!("TR {}", rng.range(10_000, 99_999)));
    j.strf("taxcodearea", format_args!("{}", rng.range(100, 9_999)));
    j.close();

    let number = rng.range(100, 29_999);
    let street = *rng.pick(&STREETS);
    let suffix = *rng.pick(&SUFFIXES);
    j.open("address");
    j.str("country", "US");
    j.str("countrySubd", "CA");
    j.strf("line1", format_args!("{number} {street} {suffix}"));
    j.strf("line2", format_args!("{city}, CA {zip3}{zip_tail:02}"));
    j.str("locality", city);
    j.str("matchCode", if rng.below(100) < 90 { "ExaStr" } else { "ExaAdr" });
    j.strf("oneLine", format_args!("{number} {street} {suffix}, {city}, CA {zip3}{zip_tail:02}"));
    j.strf("postal1", format_args!("{zip3}{zip_tail:02}"));
    j.strf("postal2", format_args!("{:04}", rng.range(1, 9_999)));
    let route = *rng.pick(&["R", "C", "H"]);
    j.strf("postal3", format_args!("{route}{:03}", rng.range(1, 99)));
    j.close();

    let lat = rng.range(c.lat.0, c.lat.1);
    let lon = rng.range(c.lon.0, c.lon.1);
    totals.sum_latitude_micro += lat;
    j.open("location");
    let accuracy = *rng.pick(&["Rooftop", "Rooftop", "Rooftop", "Street", "Zip4"]);
    j.str("accuracy", accuracy);
    j.fixed_str("latitude", lat, 6);
    j.fixed_str("longitude", lon, 6);
    j.raw("distance", "0.0");
    let (cs, db) = (rng.range(1, 9_999_999), rng.range(1, 9_999_999));
    j.strf("geoid", format_args!("CO{}, CS{cs:07}, DB{db:07}, ZI{zip3}{zip_tail:02}", c.fips));
    j.open("geoIdV4");
    j.strf("CO", format_args!("{:016x}{:016x}", ctx.county_co_hash, !ctx.county_co_hash));
    for key in ["DB", "ZI"] {
        let (h, l) = (rng.next_u64(), rng.next_u64());
        j.strf(key, format_args!("{h:016x}{l:016x}"));
    }
    j.close();
    j.close();

    // 0 = SFR, 1 = condo, 2 = duplex; condos are smaller and cheaper per room.
    let kind = match rng.below(10) {
        0..=6 => 0,
        7..=8 => 1,
        _ => 2,
    };
    let (propclass, propsubtype, proptype, landuse, indicator) = [
        ("Single Family Residence", "HOUSE", "SFR", "SFR", 10),
        ("Condominium", "CONDOMINIUM", "CONDOMINIUM", "CONDOMINIUM", 11),
        ("Apartment or Multi Family", "DUPLEX", "DUPLEX", "DUPLEX", 21),
    ][kind];
    j.open("summary");
    j.str("absenteeInd", if rng.below(100) < 65 { "OWNER OCCUPIED" } else { "ABSENTEE OWNER" });
    j.str("propclass", propclass);
    j.str("propsubtype", propsubtype);
    j.str("proptype", proptype);
    if rng.below(1000) < 30 {
        totals.zero_year_built += 1;
        j.int("yearbuilt", 0);
    } else {
        j.int("yearbuilt", rng.range(1905, (ctx.year - 1).min(2023)));
    }
    j.str("propLandUse", landuse);
    j.int("propIndicator", indicator);
    let (tract, lotnum, blk) = (rng.range(1_000, 99_999), rng.range(1, 120), rng.range(1, 30));
    j.strf("legal1", format_args!("TRACT NO {tract} LOT {lotnum} BLK {blk}"));
    j.close();

    let sqft = if kind == 1 { rng.range(500, 2_000) } else { rng.range(750, 4_200) };
    let beds = if kind == 1 { rng.range(1, 3) } else { rng.range(2, 6) };
    let has_building = rng.below(1000) >= 20;
    if has_building {
        j.open("building");
        j.open("size");
        let bldg = sqft + rng.range(0, 200);
        j.int("universalsize", sqft);
        j.int("bldgsize", bldg);
        j.int("grosssize", bldg + rng.range(0, 400));
        j.int("livingsize", sqft);
        j.close();
        j.open("rooms");
        let halves = rng.range(2, 9);
        if rng.below(1000) < 30 {
            // Whole bathroom counts sometimes come through as JSON ints.
            j.int("bathstotal", (halves / 2).max(1));
        } else {
            j.fixed("bathstotal", halves * 5, 1);
        }
        j.int("beds", beds);
        j.close();
        j.close();
    } else {
        totals.missing_building += 1;
    }

    let trans = ctx.month_start + rng.below(u64::from(ctx.days_in_month)) as i64;
    let rec = trans + rng.range(2, 21);
    let modified = rec + rng.range(7, 60);
    let noise = rng.range(70, 140);
    let price = ((sqft * c.price_per_sqft * noise / 100 + 250) / 500 * 500).max(50_000);
    let null_price = rng.below(1000) < 10;
    j.open("sale");
    j.date("saleSearchDate", trans);
    j.date("saleTransDate", trans);
    j.open("amount");
    if null_price {
        totals.null_sale_price += 1;
        j.null("saleamt");
    } else {
        totals.sum_sale_price += price;
        j.int("saleamt", price);
    }
    j.date("salerecdate", rec);
    j.str("saledisclaimer", "As recorded");
    j.strf("saledocnum", format_args!("{}{:07}", ctx.year, rng.range(1, 9_999_999)));
    let trans_type = match rng.below(100) {
        0..=89 => "Resale",
        90..=95 => "New Construction",
        _ => "REO Sale",
    };
    j.str("saletranstype", trans_type);
    j.close();
    j.open("calculation");
    if has_building && !null_price {
        j.int("priceperbed", price / beds);
        j.int("pricepersizeunit", price / sqft);
    } else {
        j.null("priceperbed");
        j.null("pricepersizeunit");
    }
    j.close();
    j.close();

    j.open("vintage");
    j.date("lastModified", modified);
    j.date("pubDate", modified);
    j.close();
}

/// Hand-rolled JSON writer: tracks only whether the next member needs a comma.
struct Json {
    out: String,
    comma: bool,
}

// `write!` into a String cannot fail, so its Result is dropped throughout.
impl Json {
    fn key(&mut self, k: &str) {
        if self.comma {
            self.out.push(',');
        }
        self.out.push('"');
        self.out.push_str(k);
        self.out.push_str("\":");
        self.comma = true;
    }
    fn open(&mut self, k: &str) {
        self.key(k);
        self.out.push('{');
        self.comma = false;
    }
    fn close(&mut self) {
        self.out.push('}');
        self.comma = true;
    }
    fn str(&mut self, k: &str, v: &str) {
        self.key(k);
        self.out.push('"');
        self.out.push_str(v);
        self.out.push('"');
    }
    fn strf(&mut self, k: &str, v: std::fmt::Arguments<'_>) {
        self.key(k);
        self.out.push('"');
        let _ = self.out.write_fmt(v);
        self.out.push('"');
    }
    fn int(&mut self, k: &str, v: i64) {
        self.key(k);
        let _ = write!(self.out, "{v}");
    }
    fn raw(&mut self, k: &str, v: &str) {
        self.key(k);
        self.out.push_str(v);
    }
    fn null(&mut self, k: &str) {
        self.raw(k, "null");
    }
    /// A decimal number `v / 10^digits`, written from integers so it is exact and always has a `.`.
    fn fixed(&mut self, k: &str, v: i64, digits: u32) {
        self.key(k);
        push_fixed(&mut self.out, v, digits);
    }
    /// Like [`Json::fixed`] but quoted, the way ATTOM sends coordinates.
    fn fixed_str(&mut self, k: &str, v: i64, digits: u32) {
        self.key(k);
        self.out.push('"');
        push_fixed(&mut self.out, v, digits);
        self.out.push('"');
    }
    /// An unpadded `%Y-%-m-%-d` date from days since 1970-01-01.
    fn date(&mut self, k: &str, days: i64) {
        let (y, m, d) = civil_from_days(days);
        self.strf(k, format_args!("{y}-{m}-{d}"));
    }
}

fn push_fixed(out: &mut String, v: i64, digits: u32) {
    let p = 10u64.pow(digits);
    let sign = if v < 0 { "-" } else { "" };
    let a = v.unsigned_abs();
    let _ = write!(out, "{sign}{}.{:0w$}", a / p, a % p, w = digits as usize);
}

// Civil-date arithmetic (Howard Hinnant's algorithms), to stay off a date library in the hot loop.
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

fn days_in_month(y: i64, m: u32) -> u32 {
    let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
    (days_from_civil(ny, nm, 1) - days_from_civil(y, m, 1)) as u32
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;
    use std::collections::HashSet;

    fn spec(files: usize, rows: usize, seed: u64) -> AttomSpec {
        AttomSpec { files, rows, seed }
    }

    fn parse(bytes: &[u8]) -> Vec<Value> {
        match serde_json::from_slice::<Value>(bytes) {
            Ok(Value::Array(v)) => v,
            other => panic!("not a JSON array: {other:?}"),
        }
    }

    fn at<'a>(v: &'a Value, path: &str) -> &'a Value {
        v.pointer(path).unwrap_or(&Value::Null)
    }

    #[test]
    fn same_spec_same_bytes() {
        let s = spec(3, 2_500, 7);
        for i in 0..s.files {
            assert_eq!(attom_file(&s, i), attom_file(&s, i));
        }
        assert_ne!(attom_file(&s, 0).1, attom_file(&spec(3, 2_500, 8), 0).1);
        // Each file has its own random stream, so files never repeat each other.
        assert_ne!(attom_file(&s, 0).1, attom_file(&s, 1).1);
    }

    #[test]
    fn dates_round_trip() {
        for days in -800_000..800_000 {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(days_in_month(2020, 2), 29);
        assert_eq!(days_in_month(2019, 2), 28);
        assert_eq!(days_in_month(2019, 12), 31);
    }

    #[test]
    fn totals_add_up_and_files_land_on_disk() {
        let s = spec(13, 5_003, 42);
        let dir = tempfile::tempdir().expect("tempdir");
        let written = write_attom_files(dir.path(), &s).expect("write");

        let mut summed = AttomTotals::default();
        let mut names = HashSet::new();
        for i in 0..s.files {
            let (name, bytes, t) = attom_file(&s, i);
            assert_eq!(t.bytes, bytes.len() as u64);
            let on_disk = std::fs::read(dir.path().join(&name)).expect("read back");
            assert_eq!(on_disk, bytes, "{name}");
            assert!(names.insert(name));
            summed.merge(&t);
        }
        assert_eq!(written, summed);
        assert_eq!(written.files, 13);
        assert_eq!(written.rows, 5_003);
        let entries = std::fs::read_dir(dir.path()).expect("list").count();
        assert_eq!(entries, 13, "no temporary files left behind");
    }

    #[test]
    fn file_names_are_distinct_and_well_formed() {
        let s = spec(500, 0, 1);
        let mut seen = HashSet::new();
        for i in 0..s.files {
            let (name, bytes, _) = attom_file(&s, i);
            assert_eq!(bytes, b"[]");
            let (co, date) = name.split_once(' ').expect("space in name");
            assert!(co.len() == 7 && co.starts_with("CO06"), "{name}");
            assert!(co[2..].bytes().all(|b| b.is_ascii_digit()), "{name}");
            assert_eq!(date.len(), 10, "{name}");
            assert!(date.ends_with("-01"), "{name}");
            assert!(!name.contains('.'), "no extension: {name}");
            assert!(seen.insert(name));
        }
        assert_eq!(attom_file(&s, 0).0, "CO06037 2019-01-01");
        assert_eq!(attom_file(&s, 1).0, "CO06059 2019-01-01");
        assert_eq!(attom_file(&s, COUNTIES.len()).0, "CO06037 2019-02-01");
    }

    #[test]
    fn parses_and_matches_its_totals() {
        let s = spec(4, 4_002, 3);
        let mut next_id = FIRST_ID;
        for i in 0..s.files {
            let (_, bytes, t) = attom_file(&s, i);
            assert!(!bytes.contains(&b'\n'), "one line");
            let recs = parse(&bytes);
            assert_eq!(recs.len(), t.rows);
            assert_eq!(t.rows, if i < 2 { 1_001 } else { 1_000 });
            let mut sum = 0i64;
            let mut nulls = 0;
            let mut lat = 0i64;
            let mut no_building = 0;
            let mut zero_year = 0;
            for r in &recs {
                assert_eq!(at(r, "/identifier/Id").as_u64(), Some(next_id));
                next_id += 1;
                match at(r, "/sale/amount/saleamt") {
                    Value::Null => nulls += 1,
                    v => sum += v.as_i64().expect("saleamt int"),
                }
                let l: f64 = at(r, "/location/latitude").as_str().expect("lat str").parse().expect("lat");
                lat += (l * 1e6).round() as i64;
                no_building += usize::from(r.get("building").is_none());
                zero_year += usize::from(at(r, "/summary/yearbuilt").as_i64() == Some(0));
            }
            assert_eq!(sum, t.sum_sale_price);
            assert_eq!(nulls, t.null_sale_price);
            assert_eq!(lat, t.sum_latitude_micro);
            assert_eq!(no_building, t.missing_building);
            assert_eq!(zero_year, t.zero_year_built);
        }
        assert_eq!(next_id, FIRST_ID + 4_002);
    }

    #[test]
    fn every_messy_case_shows_up() {
        let s = spec(1, 2_000, 2024);
        let (_, bytes, t) = attom_file(&s, 0);
        let recs = parse(&bytes);
        assert_eq!(recs.len(), 2_000);
        let per_record = bytes.len() / recs.len();
        assert!((1_200..=1_600).contains(&per_record), "{per_record} bytes per record");

        let count = |f: &dyn Fn(&Value) -> bool| recs.iter().filter(|r| f(r)).count();
        let is_unpadded = |v: &Value| {
            let s = v.as_str().unwrap_or("");
            let parts: Vec<_> = s.split('-').collect();
            parts.len() == 3 && !parts[1].starts_with('0') && !parts[2].starts_with('0')
        };
        // The file is January 2019, so the transaction dates have single-digit months.
        assert_eq!(
            count(&|r| {
                let d = at(r, "/sale/saleTransDate");
                is_unpadded(d) && d.as_str().is_some_and(|s| s.starts_with("2019-1-"))
            }),
            2_000
        );
        assert!(count(&|r| at(r, "/sale/saleTransDate").as_str().is_some_and(|s| s.len() < 10)) > 0);
        assert_eq!(count(&|r| is_unpadded(at(r, "/vintage/pubDate"))), 2_000);
        assert_eq!(count(&|r| at(r, "/location/latitude").is_string()), 2_000);
        assert_eq!(count(&|r| at(r, "/location/longitude").is_string()), 2_000);
        assert_eq!(
            count(&|r| at(r, "/address/postal1").as_str().is_some_and(|z| z.len() == 5 && z.bytes().all(|b| b.is_ascii_digit()))),
            2_000
        );

        let zero_year = count(&|r| at(r, "/summary/yearbuilt").as_i64() == Some(0));
        let no_building = count(&|r| r.get("building").is_none());
        let empty_lot = count(&|r| r.get("lot").and_then(Value::as_object).is_some_and(|o| o.is_empty()));
        let null_price = count(&|r| at(r, "/sale/amount/saleamt").is_null());
        let lot_null = count(&|r| r.pointer("/lot/lotSize1").is_some_and(Value::is_null));
        let lot_int = count(&|r| at(r, "/lot/lotSize1").is_u64());
        let lot_float = count(&|r| at(r, "/lot/lotSize1").is_f64());
        let bath_int = count(&|r| at(r, "/building/rooms/bathstotal").is_u64());
        let bath_float = count(&|r| at(r, "/building/rooms/bathstotal").is_f64());
        for (what, n) in [
            ("zero yearbuilt", zero_year),
            ("missing building", no_building),
            ("empty lot", empty_lot),
            ("null saleamt", null_price),
            ("null lotSize1", lot_null),
            ("int lotSize1", lot_int),
            ("float lotSize1", lot_float),
            ("int bathstotal", bath_int),
            ("float bathstotal", bath_float),
        ] {
            assert!(n > 0, "no record with {what}");
        }
        assert!(lot_float > 1_500 && bath_float > 1_500, "quirks stay the exception");
        assert_eq!(zero_year, t.zero_year_built);
        assert_eq!(no_building, t.missing_building);
        assert_eq!(null_price, t.null_sale_price);
    }

    #[test]
    fn edge_specs_do_not_panic() {
        let (_, bytes, t) = attom_file(&spec(1, 0, 0), 0);
        assert_eq!(bytes, b"[]");
        assert_eq!((t.files, t.rows, t.bytes), (1, 0, 2));

        let s = spec(5, 3, 9);
        let rows: Vec<usize> = (0..5).map(|i| attom_file(&s, i).2.rows).collect();
        assert_eq!(rows, [1, 1, 1, 0, 0]);

        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(write_attom_files(dir.path(), &spec(0, 0, 0)).expect("empty spec"), AttomTotals::default());
        let t = write_attom_files(&dir.path().join("nested/dir"), &s).expect("rows < files");
        assert_eq!((t.files, t.rows), (5, 3));

        for bad in [spec(0, 1, 0), spec(2, 2 * MAX_ROWS_PER_FILE + 1, 0)] {
            let err = write_attom_files(dir.path(), &bad).expect_err("over the cap");
            assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        }
        assert!(write_attom_files(dir.path(), &spec(1, MAX_ROWS_PER_FILE, 0)).is_ok());
    }
}
