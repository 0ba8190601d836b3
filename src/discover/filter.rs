//! Which names in a drop folder are candidates at all.

use globset::{Glob, GlobSet, GlobSetBuilder};

/// Include/exclude globs plus the names writers use while a file is still being written.
#[derive(Debug, Clone)]
pub struct FileFilter {
    include: Option<GlobSet>,
    exclude: GlobSet,
}

impl FileFilter {
    /// Builds the filter; patterns were checked by config validation, a bad one is still an error.
    pub fn new(include: &[String], exclude: &[String]) -> Result<FileFilter, globset::Error> {
        let build = |patterns: &[String]| -> Result<GlobSet, globset::Error> {
            let mut set = GlobSetBuilder::new();
            for p in patterns {
                set.add(Glob::new(p)?);
            }
            set.build()
        };
        Ok(FileFilter { include: if include.is_empty() { None } else { Some(build(include)?) }, exclude: build(exclude)? })
    }

    /// `relative` is the path below the folder, with `/` separators.
    pub fn accepts(&self, relative: &str) -> bool {
        let file_name = relative.rsplit('/').next().unwrap_or(relative);
        if looks_temporary(file_name) || relative.split('/').any(|part| part.starts_with('.')) {
            return false;
        }
        self.include.as_ref().is_none_or(|set| set.is_match(relative)) && !self.exclude.is_match(relative)
    }
}

/// Names that writers (browsers, editors, rsync, our own archive moves) use for unfinished files.
pub fn looks_temporary(file_name: &str) -> bool {
    file_name.starts_with('.')
        || file_name.ends_with('~')
        || [".tmp", ".part", ".swp", ".crdownload", ".partial"]
            .iter()
            .any(|suffix| file_name.len() > suffix.len() && file_name.to_ascii_lowercase().ends_with(suffix))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temporary_names_are_never_candidates() {
        let filter = FileFilter::new(&[], &[]).unwrap();
        for name in [".hidden", "a.tmp", "a.TMP", "a.part", "a~", "a.swp", "sub/.git/x", "x.crdownload"] {
            assert!(!filter.accepts(name), "{name} should be refused");
        }
        for name in ["CO06037 2019-01-01", "a.json", "sub/b.csv.gz", "tmp", "part"] {
            assert!(filter.accepts(name), "{name} should be accepted");
        }
    }

    #[test]
    fn include_and_exclude_globs_apply_to_the_relative_path() {
        let filter = FileFilter::new(&["CO*".into(), "*.csv".into()], &["*2018*".into()]).unwrap();
        assert!(filter.accepts("CO06037 2019-01-01"));
        assert!(filter.accepts("x.csv"));
        assert!(!filter.accepts("CO06037 2018-01-01"));
        assert!(!filter.accepts("readme.txt"));
    }
}
