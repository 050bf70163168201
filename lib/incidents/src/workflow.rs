//! The GB/T 30428 closed loop as pure functions: which step leads from
//! which status to which, and which role may take it.
//!
//! ```text
//! reported --file--> filed --dispatch--> dispatched --accept--> accepted --handle--> handled --close--> closed
//!    |                 |                     ^                                          |
//!    +----cancel-------+--cancel--> cancelled +------------------rework-----------------+
//! ```
//!
//! | step | from | to | roles |
//! | --- | --- | --- | --- |
//! | file | reported | filed | supervisor |
//! | cancel | reported, filed | cancelled | supervisor |
//! | dispatch | filed | dispatched | dispatcher |
//! | accept | dispatched | accepted | department, worker (its own assignment) |
//! | handle | accepted | handled | department, worker (its own assignment) |
//! | close | handled | closed | supervisor |
//! | rework | handled | dispatched | supervisor |
//!
//! Reporting (opening an incident through the API) is open to supervisor,
//! dispatcher, worker and reporter tokens. Viewers only read.
//!
//! Guarantee: [`check`] is the only gate; the service calls it inside the
//! transaction that applies the step, against the row it read in that
//! transaction, so a step is applied only from the status it was checked
//! against.

use super::model::{Action, AssigneeKind, Principal, Role, Status};

/// Why a step was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StepError {
    /// The role may never take this step.
    #[error("role {role} may not {action} (allowed: {allowed})")]
    Forbidden {
        /// The actor's role.
        role: Role,
        /// The step.
        action: Action,
        /// Roles that may.
        allowed: String,
    },
    /// The role may take it, but this incident is not theirs.
    #[error("{who} may not {action} incident {id}: it is assigned to {assignee}")]
    NotAssignee {
        /// Incident id.
        id: i64,
        /// The actor.
        who: String,
        /// The step.
        action: Action,
        /// Whom it is assigned to.
        assignee: String,
    },
    /// The incident is not in a status this step starts from.
    #[error("cannot {action} incident {id}: it is {status} (needs {needs})")]
    WrongStatus {
        /// Incident id.
        id: i64,
        /// The step.
        action: Action,
        /// Its current status.
        status: Status,
        /// Statuses the step starts from.
        needs: String,
    },
}

/// Statuses `action` starts from.
pub fn from_statuses(action: Action) -> &'static [Status] {
    match action {
        Action::File => &[Status::Reported],
        Action::Cancel => &[Status::Reported, Status::Filed],
        Action::Dispatch => &[Status::Filed],
        Action::Accept => &[Status::Dispatched],
        Action::Handle => &[Status::Accepted],
        Action::Close | Action::Rework => &[Status::Handled],
    }
}

/// The status `action` leads to.
pub fn to_status(action: Action) -> Status {
    match action {
        Action::File => Status::Filed,
        Action::Cancel => Status::Cancelled,
        Action::Dispatch | Action::Rework => Status::Dispatched,
        Action::Accept => Status::Accepted,
        Action::Handle => Status::Handled,
        Action::Close => Status::Closed,
    }
}

/// Roles that may take `action` (subject to the assignment check for
/// `department` and `worker`).
pub fn roles_for(action: Action) -> &'static [Role] {
    match action {
        Action::File | Action::Cancel | Action::Close | Action::Rework => &[Role::Supervisor],
        Action::Dispatch => &[Role::Dispatcher],
        Action::Accept | Action::Handle => &[Role::Department, Role::Worker],
    }
}

/// Roles that may open an incident through the API.
pub const REPORT_ROLES: &[Role] = &[
    Role::Supervisor,
    Role::Dispatcher,
    Role::Worker,
    Role::Reporter,
];

/// Whether `role` may open incidents.
pub fn may_report(role: Role) -> bool {
    REPORT_ROLES.contains(&role)
}

/// Whether `role` may take `action` on some incident.
pub fn role_may(role: Role, action: Action) -> Result<(), StepError> {
    let allowed = roles_for(action);
    if allowed.contains(&role) {
        Ok(())
    } else {
        Err(StepError::Forbidden {
            role,
            action,
            allowed: allowed
                .iter()
                .map(|r| r.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        })
    }
}

/// The facts about one incident that [`check`] needs.
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    /// Id.
    pub id: i64,
    /// Current status.
    pub status: Status,
    /// Who it is dispatched to.
    pub assignee: Option<(AssigneeKind, &'a str)>,
}

/// Checks that `who` may take `action` on `subject` now; returns the status
/// it leads to.
pub fn check(who: &Principal, action: Action, subject: Subject<'_>) -> Result<Status, StepError> {
    role_may(who.role, action)?;
    if matches!(action, Action::Accept | Action::Handle) {
        let mine = match (who.role, subject.assignee) {
            (Role::Department, Some((AssigneeKind::Department, d))) => {
                who.department.as_deref() == Some(d)
            }
            (Role::Worker, Some((AssigneeKind::Worker, w))) => who.worker.as_deref() == Some(w),
            _ => false,
        };
        // A missing assignee means the incident is not dispatched; the
        // status check below reports that more usefully.
        if !mine && subject.assignee.is_some() {
            return Err(StepError::NotAssignee {
                id: subject.id,
                who: who.name.clone(),
                action,
                assignee: subject
                    .assignee
                    .map(|(k, v)| format!("{k} {v}"))
                    .unwrap_or_default(),
            });
        }
    }
    let from = from_statuses(action);
    if !from.contains(&subject.status) {
        return Err(StepError::WrongStatus {
            id: subject.id,
            action,
            status: subject.status,
            needs: from
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(" or "),
        });
    }
    Ok(to_status(action))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn who(role: Role) -> Principal {
        Principal {
            name: format!("t-{role}"),
            role,
            department: (role == Role::Department).then(|| "traffic".to_owned()),
            worker: (role == Role::Worker).then(|| "W002".to_owned()),
        }
    }

    fn subject(status: Status, assignee: Option<(AssigneeKind, &str)>) -> Subject<'_> {
        Subject {
            id: 7,
            status,
            assignee,
        }
    }

    #[test]
    fn the_happy_path_walks_the_whole_loop() {
        let dept = Some((AssigneeKind::Department, "traffic"));
        let steps = [
            (
                Role::Supervisor,
                Action::File,
                Status::Reported,
                Status::Filed,
            ),
            (
                Role::Dispatcher,
                Action::Dispatch,
                Status::Filed,
                Status::Dispatched,
            ),
            (
                Role::Department,
                Action::Accept,
                Status::Dispatched,
                Status::Accepted,
            ),
            (
                Role::Department,
                Action::Handle,
                Status::Accepted,
                Status::Handled,
            ),
            (
                Role::Supervisor,
                Action::Rework,
                Status::Handled,
                Status::Dispatched,
            ),
            (
                Role::Supervisor,
                Action::Close,
                Status::Handled,
                Status::Closed,
            ),
        ];
        for (role, action, from, to) in steps {
            assert_eq!(
                check(&who(role), action, subject(from, dept)),
                Ok(to),
                "{role} {action} from {from}"
            );
        }
    }

    #[test]
    fn every_role_action_pair_follows_the_table() {
        let table: &[(Action, &[Role])] = &[
            (Action::File, &[Role::Supervisor]),
            (Action::Cancel, &[Role::Supervisor]),
            (Action::Dispatch, &[Role::Dispatcher]),
            (Action::Accept, &[Role::Department, Role::Worker]),
            (Action::Handle, &[Role::Department, Role::Worker]),
            (Action::Close, &[Role::Supervisor]),
            (Action::Rework, &[Role::Supervisor]),
        ];
        for (action, allowed) in table {
            for role in Role::ALL {
                assert_eq!(
                    role_may(*role, *action).is_ok(),
                    allowed.contains(role),
                    "{role} {action}"
                );
            }
        }
        assert!(!may_report(Role::Viewer));
        assert!(!may_report(Role::Department));
        assert!(may_report(Role::Reporter));
    }

    #[test]
    fn a_worker_cannot_close_and_a_viewer_cannot_do_anything() {
        let s = subject(Status::Handled, Some((AssigneeKind::Worker, "W002")));
        assert!(matches!(
            check(&who(Role::Worker), Action::Close, s),
            Err(StepError::Forbidden { .. })
        ));
        for a in Action::ALL {
            assert!(check(&who(Role::Viewer), *a, s).is_err(), "{a}");
        }
    }

    #[test]
    fn only_the_assignee_accepts_and_handles() {
        let other = Some((AssigneeKind::Department, "city"));
        let e = check(
            &who(Role::Department),
            Action::Accept,
            subject(Status::Dispatched, other),
        );
        assert!(
            matches!(&e, Err(StepError::NotAssignee { assignee, .. }) if assignee == "department city"),
            "{e:?}"
        );
        let to_worker = Some((AssigneeKind::Worker, "W002"));
        assert_eq!(
            check(
                &who(Role::Worker),
                Action::Accept,
                subject(Status::Dispatched, to_worker)
            ),
            Ok(Status::Accepted)
        );
        // A department cannot take a worker's task, even of the same name.
        assert!(
            check(
                &who(Role::Department),
                Action::Accept,
                subject(Status::Dispatched, to_worker)
            )
            .is_err()
        );
    }

    #[test]
    fn steps_from_the_wrong_status_name_the_needed_one() {
        let e = check(
            &who(Role::Dispatcher),
            Action::Dispatch,
            subject(Status::Dispatched, None),
        );
        let msg = e.map(|_| ()).unwrap_err().to_string();
        assert_eq!(
            msg,
            "cannot dispatch incident 7: it is dispatched (needs filed)"
        );
        for terminal in [Status::Closed, Status::Cancelled] {
            for a in Action::ALL {
                let role = roles_for(*a)[0];
                let mut p = who(role);
                p.department = Some("traffic".into());
                let r = check(
                    &p,
                    *a,
                    subject(terminal, Some((AssigneeKind::Department, "traffic"))),
                );
                assert!(r.is_err(), "{a} from {terminal}");
            }
        }
    }
}
