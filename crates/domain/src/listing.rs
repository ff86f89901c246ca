use crate::{Room, RoomId};

/// A place in the public room list, whose order is `ViewCount` descending, then `CreateTime`
/// descending, then `RoomId` ascending (docs/behaviour.md §6). A page that ends at a room resumes
/// strictly after that room's position, so walking an unchanging list yields each room once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListPosition {
    pub view_count: u64,
    pub create_time: u64,
    pub room_id: RoomId,
}

impl ListPosition {
    pub fn of(room: &Room) -> Self {
        Self {
            view_count: room.view_count,
            create_time: room.create_time,
            room_id: room.id.clone(),
        }
    }

    /// Whether `room` comes after this position in list order.
    pub fn precedes(&self, room: &Room) -> bool {
        self.sort_key() < ListPosition::of(room).sort_key()
    }

    /// A key whose ascending order is list order.
    pub fn sort_key(&self) -> (std::cmp::Reverse<u64>, std::cmp::Reverse<u64>, &str) {
        (
            std::cmp::Reverse(self.view_count),
            std::cmp::Reverse(self.create_time),
            self.room_id.as_str(),
        )
    }
}

/// The rooms a `get_room_list` page holds: `count` if given (1 to 20), else 20.
pub fn page_size(count: Option<i64>) -> Result<usize, crate::DomainError> {
    use crate::limits::ROOM_LIST_MAX_COUNT;
    match count {
        None => Ok(ROOM_LIST_MAX_COUNT),
        Some(n) if (1..=ROOM_LIST_MAX_COUNT as i64).contains(&n) => Ok(n as usize),
        Some(_) => Err(crate::DomainError::invalid(
            "Count",
            format!("must be from 1 to {ROOM_LIST_MAX_COUNT}"),
        )),
    }
}
