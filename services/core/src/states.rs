//! The care domain's two state machines, each one enum with its moves as data: a care-team
//! membership (`care_team_members.status`) and a support request (`support_requests.status`).
//!
//! The database states the same moves in its triggers (`care_team_members_transition`,
//! `support_requests_transition`, migrations 4, 5 and 8) and the same words in its `CHECK`
//! constraints; the integration test `state_machines` tries every (from, to) pair, as every
//! mover, against them and fails when the two disagree. A move added here needs the trigger
//! changed in a new migration, and the other way round.

crate::string_enum!(
    /// Where a facility stands in a patient's care team. The registering facility's own row is
    /// `active` from the start and never moves; a member's row starts `invited`.
    MemberStatus {
        Invited => "invited" / "招待中",
        Active => "active" / "参加中",
        Declined => "declined" / "辞退",
        Left => "left" / "離脱",
        Removed => "removed" / "除外",
    }
);

/// Who moves a membership.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MemberMover {
    /// The member facility itself: accepts, declines, leaves.
    Member,
    /// The patient's registering facility: removes a member, cancels an invitation, invites a
    /// former member again.
    Registering,
}

impl MemberMover {
    pub const ALL: &'static [MemberMover] = &[MemberMover::Member, MemberMover::Registering];
}

impl MemberStatus {
    /// Where a member's row starts (the database's insert policy says the same).
    pub const INITIAL: MemberStatus = MemberStatus::Invited;

    /// Every move a member's row may make, and who makes it. Nothing else moves it (a
    /// membership is never re-activated except by accepting a new invitation).
    pub const MOVES: &'static [(MemberStatus, MemberStatus, MemberMover)] = {
        use MemberMover::{Member, Registering};
        use MemberStatus::{Active, Declined, Invited, Left, Removed};
        &[
            (Invited, Active, Member),
            (Invited, Declined, Member),
            (Active, Left, Member),
            (Active, Removed, Registering),
            (Invited, Removed, Registering),
            (Declined, Invited, Registering),
            (Left, Invited, Registering),
            (Removed, Invited, Registering),
        ]
    };

    /// Whether anyone may move a membership from `self` to `next`.
    pub fn may_become(self, next: MemberStatus) -> bool {
        Self::MOVES.iter().any(|&(f, t, _)| f == self && t == next)
    }

    /// Whether `who` may move a membership from `self` to `next`.
    pub fn may_become_by(self, next: MemberStatus, who: MemberMover) -> bool {
        Self::MOVES.contains(&(self, next, who))
    }
}

crate::string_enum!(
    /// Where a support request (支援依頼, 第13–14条) stands.
    SupportStatus {
        Requested => "requested" / "依頼中",
        Accepted => "accepted" / "受諾",
        Declined => "declined" / "辞退",
        Answered => "answered" / "回答済み",
        Closed => "closed" / "終了",
    }
);

/// Who moves a support request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SupportSide {
    /// The asking facility: closes its request.
    Asking,
    /// The asked facility: accepts or declines, answers.
    Asked,
}

impl SupportSide {
    pub const ALL: &'static [SupportSide] = &[SupportSide::Asking, SupportSide::Asked];
}

impl SupportStatus {
    /// Where a request starts (the column's default; the insert policy allows nothing else).
    pub const INITIAL: SupportStatus = SupportStatus::Requested;

    /// Every move a request may make, and who makes it. A declined or closed request stays so.
    pub const MOVES: &'static [(SupportStatus, SupportStatus, SupportSide)] = {
        use SupportSide::{Asked, Asking};
        use SupportStatus::{Accepted, Answered, Closed, Declined, Requested};
        &[
            (Requested, Accepted, Asked),
            (Requested, Declined, Asked),
            (Accepted, Answered, Asked),
            (Requested, Closed, Asking),
            (Accepted, Closed, Asking),
            (Answered, Closed, Asking),
        ]
    };

    /// Whether anyone may move a request from `self` to `next`.
    pub fn may_become(self, next: SupportStatus) -> bool {
        Self::MOVES.iter().any(|&(f, t, _)| f == self && t == next)
    }

    /// Whether `who` may move a request from `self` to `next`.
    pub fn may_become_by(self, next: SupportStatus, who: SupportSide) -> bool {
        Self::MOVES.contains(&(self, next, who))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_state_becomes_itself_and_every_state_is_reached_or_initial() {
        for &s in MemberStatus::ALL {
            assert!(!s.may_become(s), "{s}");
            assert!(
                s == MemberStatus::INITIAL || MemberStatus::ALL.iter().any(|f| f.may_become(s)),
                "{s} is unreachable"
            );
        }
        for &s in SupportStatus::ALL {
            assert!(!s.may_become(s), "{s}");
            assert!(
                s == SupportStatus::INITIAL || SupportStatus::ALL.iter().any(|f| f.may_become(s)),
                "{s} is unreachable"
            );
        }
    }

    #[test]
    fn final_states_stay() {
        for &next in SupportStatus::ALL {
            assert!(!SupportStatus::Declined.may_become(next));
            assert!(!SupportStatus::Closed.may_become(next));
        }
        // A membership is re-activated only through a new invitation.
        for &from in MemberStatus::ALL {
            assert_eq!(
                from.may_become(MemberStatus::Active),
                from == MemberStatus::Invited
            );
        }
    }

    #[test]
    fn one_mover_per_move() {
        for &(f, t, who) in MemberStatus::MOVES {
            assert!(f.may_become_by(t, who));
            for &other in MemberMover::ALL {
                assert_eq!(f.may_become_by(t, other), other == who, "{f} → {t}");
            }
        }
        for &(f, t, who) in SupportStatus::MOVES {
            for &other in SupportSide::ALL {
                assert_eq!(f.may_become_by(t, other), other == who, "{f} → {t}");
            }
        }
    }
}
