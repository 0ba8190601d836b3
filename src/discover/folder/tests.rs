use super::*;
use crate::config::Config;
use std::fs;

fn source_in(dir: &Path, min_age: &str) -> FolderSource {
    let text = format!(
        "[sources.s]\npath = {:?}\nmin_age = {min_age:?}\nrelist_interval = \"1h\"\nsinks = [\"t\"]\n[sinks.t]\nkind = \"delta\"\nuri = \"t\"\n",
        dir.display().to_string()
    );
    let config = Config::from_toml(&text, dir).expect("test config");
    FolderSource::new("s", &config.sources["s"]).expect("source")
}

fn names(candidates: &[Candidate]) -> Vec<&str> {
    candidates.iter().map(|c| c.name.as_str()).collect()
}

#[test]
fn startup_scan_hands_on_old_files_once_and_ignores_temporary_names() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["CO06037 2019-01-01", "b.json", ".hidden", "c.part", "d.tmp"] {
        fs::write(dir.path().join(name), b"[]").unwrap();
    }
    let mut source = source_in(dir.path(), "0s");
    let first = source.poll(Duration::ZERO);
    assert_eq!(names(&first), ["CO06037 2019-01-01", "b.json"]);
    assert_eq!(first[0].size, 2);
    source.next_relist = Instant::now();
    assert!(source.poll(Duration::ZERO).is_empty(), "a relist must not hand the same file on twice");
}

#[test]
fn a_young_file_waits_for_min_age_and_a_changed_one_waits_again() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("growing");
    fs::write(&path, b"[1").unwrap();
    let mut source = source_in(dir.path(), "300ms");
    assert!(source.poll(Duration::ZERO).is_empty());
    assert_eq!(source.waiting(), 1);
    std::thread::sleep(Duration::from_millis(150));
    fs::write(&path, b"[1,2]").unwrap();
    source.next_relist = Instant::now();
    assert!(source.poll(Duration::ZERO).is_empty(), "changed 150ms ago: not ready");
    std::thread::sleep(Duration::from_millis(400));
    let ready = source.poll(Duration::ZERO);
    assert_eq!(names(&ready), ["growing"]);
    assert_eq!(ready[0].size, 5);
}

#[test]
fn a_file_renamed_into_the_folder_is_ready_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut source = source_in(dir.path(), "1h");
    source.watch().unwrap();
    assert!(source.poll(Duration::ZERO).is_empty());
    let tmp = dir.path().join("x.json.tmp");
    fs::write(&tmp, b"[]").unwrap();
    fs::rename(&tmp, dir.path().join("x.json")).unwrap();
    let mut ready = Vec::new();
    for _ in 0..20 {
        ready.extend(source.poll(Duration::from_millis(100)));
        if !ready.is_empty() {
            break;
        }
    }
    assert_eq!(names(&ready), ["x.json"]);
}

#[test]
fn recursion_and_symlinks_follow_the_config() {
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir(dir.path().join("sub")).unwrap();
    fs::write(dir.path().join("sub/a.csv"), b"x\n1\n").unwrap();
    let outside = tempfile::tempdir().unwrap();
    fs::write(outside.path().join("secret.csv"), b"x\n1\n").unwrap();
    std::os::unix::fs::symlink(outside.path().join("secret.csv"), dir.path().join("link.csv")).unwrap();

    let mut flat = source_in(dir.path(), "0s");
    assert!(flat.poll(Duration::ZERO).is_empty(), "no recursion, no symlinks by default");
    drop(flat);

    let mut deep = source_in(dir.path(), "0s");
    deep.recursive = true;
    deep.follow_symlinks = true;
    assert_eq!(names(&deep.poll(Duration::ZERO)), ["link.csv", "sub/a.csv"]);
}

#[test]
fn one_folder_one_watcher() {
    let dir = tempfile::tempdir().unwrap();
    let first = source_in(dir.path(), "0s");
    let text =
        format!("[sources.s]\npath = {:?}\nsinks = [\"t\"]\n[sinks.t]\nkind = \"delta\"\nuri = \"t\"\n", dir.path().display().to_string());
    let config = Config::from_toml(&text, dir.path()).unwrap();
    match FolderSource::new("other", &config.sources["s"]) {
        Err(FolderError::Locked { .. }) => {}
        Err(e) => panic!("expected Locked, got {e}"),
        Ok(_) => panic!("two watchers on one folder"),
    }
    drop(first);
    assert!(FolderSource::new("other", &config.sources["s"]).is_ok(), "the lock goes with its holder");
}

#[test]
fn names_that_are_not_utf8_stay_apart_and_lead_back_to_their_files() {
    use std::os::unix::ffi::OsStrExt;
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir(dir.path().join(std::ffi::OsStr::from_bytes(b"sub\xff"))).unwrap();
    let on_disk: [&[u8]; 5] = [b"a\xff.json", b"a\xfe.json", b"a\\b.json", b".\xff hidden", b"sub\xff/c\xfe"];
    for name in on_disk {
        fs::write(dir.path().join(std::ffi::OsStr::from_bytes(name)), b"[]").unwrap();
    }
    let mut source = source_in(dir.path(), "0s");
    source.recursive = true;
    let ready = source.poll(Duration::ZERO);
    assert_eq!(names(&ready), [r"a\\b.json", r"a\xfe.json", r"a\xff.json", r"sub\xff/c\xfe"]);
    for candidate in &ready {
        assert_eq!(candidate.path, source.root.join(crate::discover::to_os_string(&candidate.name)), "{}", candidate.name);
    }
}
