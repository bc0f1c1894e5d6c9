//! Docker's user resolution: `-u name[:group]` (or `USER`) against the
//! image's own `/etc/passwd` and `/etc/group`.

/// A resolved user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
    pub home: String,
}

/// Resolves Docker's `-u user[:group]` (names or numbers) against the
/// container's `/etc/passwd` and `/etc/group` (contents passed in: pure).
pub fn resolve_user(spec: &str, passwd: &str, group: &str) -> Result<User, String> {
    let (u, g) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let u = if u.is_empty() { "0" } else { u };
    let entry =
        passwd.lines().map(|l| l.split(':').collect::<Vec<_>>()).find(|f| f.len() >= 7 && (f[0] == u || f[2] == u));
    let (uid, mut gid, name, home) = match (&entry, u.parse::<u32>()) {
        // Root needs no passwd entry (an image may have none, or have broken it).
        (None, Ok(0)) => (0, 0, String::new(), "/root".to_owned()),
        (Some(f), _) => (
            f[2].parse().map_err(|_| format!("bad uid in /etc/passwd for {u}"))?,
            f[3].parse().map_err(|_| format!("bad gid in /etc/passwd for {u}"))?,
            f[0].to_owned(),
            f[5].to_owned(),
        ),
        (None, Ok(n)) => (n, n, String::new(), "/".to_owned()),
        (None, Err(_)) => return Err(format!("unable to find user {u}: no matching entries in passwd file")),
    };
    let groups_file: Vec<Vec<&str>> =
        group.lines().map(|l| l.split(':').collect::<Vec<_>>()).filter(|f| f.len() >= 4).collect();
    if let Some(g) = g {
        gid = match groups_file.iter().find(|f| f[0] == g || f[2] == g) {
            Some(f) => f[2].parse().map_err(|_| format!("bad gid in /etc/group for {g}"))?,
            None => g.parse().map_err(|_| format!("unable to find group {g}: no matching entries in group file"))?,
        };
    }
    let mut groups: Vec<u32> = groups_file
        .iter()
        .filter(|f| !name.is_empty() && f[3].split(',').any(|m| m == name))
        .filter_map(|f| f[2].parse().ok())
        .collect();
    // Docker's rule: the primary group is a supplementary group too, so
    // `id` shows `groups=1234(app)` (and files shared through it work).
    groups.retain(|x| *x != gid);
    groups.insert(0, gid);
    Ok(User { uid, gid, groups, home })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n";
    const GROUP: &str = "root:x:0:\napp:x:1000:\nwheel:x:10:app\n";

    #[test]
    fn resolves_names_numbers_and_groups() {
        assert_eq!(
            resolve_user("", PASSWD, GROUP).unwrap(),
            User { uid: 0, gid: 0, groups: vec![0], home: "/root".into() }
        );
        let app = resolve_user("app", PASSWD, GROUP).unwrap();
        assert_eq!(
            (app.uid, app.gid, app.groups.clone(), app.home.as_str()),
            (1000, 1000, vec![1000, 10], "/home/app")
        );
        assert_eq!(resolve_user("1000:wheel", PASSWD, GROUP).unwrap().gid, 10);
        assert_eq!(
            resolve_user("4242:4243", PASSWD, GROUP).unwrap(),
            User { uid: 4242, gid: 4243, groups: vec![4243], home: "/".into() }
        );
        assert!(resolve_user("nobody", PASSWD, GROUP).unwrap_err().contains("unable to find user nobody"));
        assert!(resolve_user("app:nogroup", PASSWD, GROUP).unwrap_err().contains("unable to find group"));
    }
}
