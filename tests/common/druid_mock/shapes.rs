//! The shape checks of the mock Overlord: what Druid's documentation says a supervisor spec,
//! an `index_parallel` task and a SQL task body contain. Each check returns the datasource, or
//! the message Druid would answer with.

use serde_json::Value;

const GRANULARITIES: [&str; 16] = [
    "NONE",
    "SECOND",
    "MINUTE",
    "FIVE_MINUTE",
    "TEN_MINUTE",
    "FIFTEEN_MINUTE",
    "THIRTY_MINUTE",
    "HOUR",
    "SIX_HOUR",
    "EIGHT_HOUR",
    "DAY",
    "WEEK",
    "MONTH",
    "QUARTER",
    "YEAR",
    "ALL",
];
const AGGREGATORS: [&str; 7] = ["count", "longSum", "doubleSum", "longMin", "longMax", "doubleMin", "doubleMax"];

fn string<'a>(v: &'a Value, what: &str) -> Result<&'a str, String> {
    v.as_str().filter(|s| !s.is_empty()).ok_or_else(|| format!("Missing or invalid [{what}]: expected a non-empty string"))
}

/// Druid's `IdUtils.validateId`.
fn check_id(id: &str, what: &str) -> Result<(), String> {
    if id.is_empty() || id.starts_with('.') || id.contains('/') || id.chars().any(|c| c.is_control() || (c.is_whitespace() && c != ' ')) {
        return Err(format!("Invalid value for field [{what}]: [{id}]"));
    }
    Ok(())
}

fn check_data_schema(ds: &Value) -> Result<String, String> {
    let datasource = string(&ds["dataSource"], "dataSource")?;
    check_id(datasource, "dataSource")?;
    string(&ds["timestampSpec"]["column"], "timestampSpec.column")?;
    if !ds["timestampSpec"]["format"].is_null() {
        string(&ds["timestampSpec"]["format"], "timestampSpec.format")?;
    }
    let dims = ds["dimensionsSpec"]["dimensions"].as_array().ok_or("Missing [dimensionsSpec.dimensions]")?;
    let mut names = Vec::new();
    for d in dims {
        let name = match d {
            Value::String(s) => s.as_str(),
            Value::Object(_) => {
                let t = string(&d["type"], "dimension type")?;
                if !["string", "long", "float", "double", "json", "auto"].contains(&t) {
                    return Err(format!("Could not resolve type id '{t}' as a dimension type"));
                }
                string(&d["name"], "dimension name")?
            }
            _ => return Err(format!("Invalid dimension {d}")),
        };
        if name == "__time" || names.contains(&name) {
            return Err(format!("dimensions have duplicate or reserved name [{name}]"));
        }
        names.push(name);
    }
    for m in ds["metricsSpec"].as_array().map(Vec::as_slice).unwrap_or_default() {
        let t = string(&m["type"], "metric type")?;
        if !AGGREGATORS.contains(&t) {
            return Err(format!("Could not resolve type id '{t}' as an aggregator"));
        }
        let name = string(&m["name"], "metric name")?;
        if t != "count" {
            string(&m["fieldName"], "fieldName")?;
        }
        if names.contains(&name) {
            return Err(format!("Cannot have same name for dimension and metric [{name}]"));
        }
        names.push(name);
    }
    let g = &ds["granularitySpec"];
    if !g["type"].is_null() && g["type"] != "uniform" {
        return Err("granularitySpec.type must be uniform".to_string());
    }
    for (key, none_ok) in [("segmentGranularity", false), ("queryGranularity", true)] {
        let value = string(&g[key], key)?;
        if !GRANULARITIES.contains(&value.to_ascii_uppercase().as_str()) || (!none_ok && value.eq_ignore_ascii_case("NONE")) {
            return Err(format!("Invalid {key} [{value}]"));
        }
    }
    if !g["rollup"].is_null() && !g["rollup"].is_boolean() {
        return Err("granularitySpec.rollup must be a boolean".to_string());
    }
    for t in ds["transformSpec"]["transforms"].as_array().map(Vec::as_slice).unwrap_or_default() {
        if t["type"] != "expression" {
            return Err(format!("Unknown transform {t}"));
        }
        string(&t["name"], "transform name")?;
        string(&t["expression"], "transform expression")?;
    }
    Ok(datasource.to_string())
}

pub fn check_supervisor(v: &Value) -> Result<String, String> {
    if v["type"] != "kafka" {
        return Err(format!("Could not resolve type id '{}' as a supervisor spec", v["type"]));
    }
    let spec = &v["spec"];
    let datasource = check_data_schema(&spec["dataSchema"])?;
    let io = &spec["ioConfig"];
    if !io["type"].is_null() && io["type"] != "kafka" {
        return Err("ioConfig.type must be kafka".to_string());
    }
    string(&io["topic"], "ioConfig.topic")?;
    string(&io["inputFormat"]["type"], "ioConfig.inputFormat.type")?;
    string(&io["consumerProperties"]["bootstrap.servers"], "consumerProperties.bootstrap.servers")?;
    for key in ["taskCount", "replicas"] {
        if !io[key].is_null() && io[key].as_u64().is_none_or(|n| n == 0) {
            return Err(format!("ioConfig.{key} must be a positive integer"));
        }
    }
    if !io["taskDuration"].is_null() && !string(&io["taskDuration"], "taskDuration")?.starts_with('P') {
        return Err("ioConfig.taskDuration must be an ISO 8601 period".to_string());
    }
    if !io["useEarliestOffset"].is_null() && !io["useEarliestOffset"].is_boolean() {
        return Err("ioConfig.useEarliestOffset must be a boolean".to_string());
    }
    if !spec["tuningConfig"].is_null() && spec["tuningConfig"]["type"] != "kafka" {
        return Err("tuningConfig.type must be kafka".to_string());
    }
    Ok(datasource)
}

fn check_input_source(s: &Value) -> Result<(), String> {
    let list = |key: &str, prefixes: &[&str]| -> Result<(), String> {
        let items = s[key].as_array().filter(|a| !a.is_empty()).ok_or(format!("inputSource.{key} must be a non-empty array"))?;
        // URIs must be encoded (no spaces); local paths are plain absolute paths.
        let ok = |u: &str| prefixes.iter().any(|p| u.starts_with(p)) && (prefixes == ["/"] || !u.contains(' '));
        match items.iter().find(|i| !i.as_str().is_some_and(ok)) {
            Some(bad) => Err(format!("inputSource.{key}: invalid entry {bad}")),
            None => Ok(()),
        }
    };
    match s["type"].as_str() {
        Some("local") if s["files"].is_array() => list("files", &["/"]),
        Some("local") => string(&s["baseDir"], "baseDir").and(string(&s["filter"], "filter")).map(|_| ()),
        Some("http") => list("uris", &["http://", "https://"]),
        Some("s3") => list("uris", &["s3://"]),
        Some("delta") => string(&s["tablePath"], "tablePath").map(|_| ()),
        other => Err(format!("Could not resolve type id '{other:?}' as an input source")),
    }
}

pub fn check_native(v: &Value) -> Result<String, String> {
    if v["type"] != "index_parallel" {
        return Err(format!("Could not resolve type id '{}' as a task", v["type"]));
    }
    if let Some(id) = v.get("id") {
        check_id(string(id, "id")?, "id")?;
    }
    let spec = &v["spec"];
    let datasource = check_data_schema(&spec["dataSchema"])?;
    let io = &spec["ioConfig"];
    if io["type"] != "index_parallel" {
        return Err("ioConfig.type must be index_parallel".to_string());
    }
    check_input_source(&io["inputSource"])?;
    if io["inputSource"]["type"] != "delta" {
        string(&io["inputFormat"]["type"], "ioConfig.inputFormat.type")?;
    }
    if !io["appendToExisting"].is_null() && !io["appendToExisting"].is_boolean() {
        return Err("ioConfig.appendToExisting must be a boolean".to_string());
    }
    let tuning = &spec["tuningConfig"];
    if !tuning.is_null() && (tuning["type"] != "index_parallel" || tuning["maxNumConcurrentSubTasks"].as_u64() == Some(0)) {
        return Err("tuningConfig must be of type index_parallel with maxNumConcurrentSubTasks >= 1".to_string());
    }
    Ok(datasource)
}

/// The SQL body: an INSERT/REPLACE whose EXTERN arguments are a valid input source, input
/// format and signature.
pub fn check_sql(v: &Value) -> Result<String, String> {
    let query = string(&v["query"], "query")?;
    if let Some(id) = v["context"].get("sqlQueryId") {
        check_id(string(id, "sqlQueryId")?, "sqlQueryId")?;
    }
    let upper = query.to_ascii_uppercase();
    let target = if upper.starts_with("INSERT INTO ") {
        &query[12..]
    } else if upper.starts_with("REPLACE INTO ") && upper.contains(" OVERWRITE ") {
        &query[13..]
    } else {
        return Err("SQL ingestion needs INSERT INTO or REPLACE INTO ... OVERWRITE".to_string());
    };
    if !upper.contains("PARTITIONED BY") || !query.contains("AS \"__time\"") {
        return Err("INSERT and REPLACE queries need PARTITIONED BY and a __time column".to_string());
    }
    let datasource = target.split_whitespace().next().unwrap_or_default().trim_matches('"').to_string();
    let at = upper.find("EXTERN(").ok_or("no EXTERN(...) in the query")? + 7;
    let mut rest = &query[at..];
    let mut args = Vec::new();
    for _ in 0..3 {
        rest = rest.trim_start_matches(|c: char| c.is_whitespace() || c == ',');
        let (literal, after) = sql_literal(rest).ok_or("EXTERN takes three string literals")?;
        args.push(serde_json::from_str::<Value>(&literal).map_err(|e| format!("EXTERN argument is not JSON: {e}"))?);
        rest = after;
    }
    check_input_source(&args[0])?;
    string(&args[1]["type"], "EXTERN input format type")?;
    let columns = args[2].as_array().filter(|a| !a.is_empty()).ok_or("EXTERN signature must be a non-empty array")?;
    for c in columns {
        string(&c["name"], "signature name")?;
        if !["string", "long", "float", "double"].contains(&c["type"].as_str().unwrap_or_default()) {
            return Err(format!("Invalid signature column {c}"));
        }
    }
    Ok(datasource)
}

/// The SQL string literal at the start of `text` (quotes doubled inside) and the rest.
fn sql_literal(text: &str) -> Option<(String, &str)> {
    let body = text.strip_prefix('\'')?;
    let mut out = String::new();
    let mut chars = body.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if c == '\'' {
            if chars.peek().map(|p| p.1) == Some('\'') {
                chars.next();
                out.push('\'');
            } else {
                return Some((out, &body[i + 1..]));
            }
        } else {
            out.push(c);
        }
    }
    None
}
