//! The seed sets of the original platform, bundled: two drops of registrations, profile
//! changes, workouts and gym logins, and the 2023 `date_lookup` calendar.

/// The 2023 calendar of the original platform (`6-date-lookup.json`).
pub const SEED_DATE_LOOKUP: &str = include_str!("../seed-sets/6-date-lookup.json");

/// The seed sets of the original platform, by set number.
pub const SEED_SETS: [SeedSet; 2] = [
    SeedSet {
        registered_users: ("1-registered_users_1.csv", include_str!("../seed-sets/1-registered_users_1.csv")),
        user_info: ("2-user_info_1.json", include_str!("../seed-sets/2-user_info_1.json")),
        workouts: ("4-workout_1.json", include_str!("../seed-sets/4-workout_1.json")),
        gym_logins: ("5-gym_logins_1.csv", include_str!("../seed-sets/5-gym_logins_1.csv")),
    },
    SeedSet {
        registered_users: ("1-registered_users_2.csv", include_str!("../seed-sets/1-registered_users_2.csv")),
        user_info: ("2-user_info_2.json", include_str!("../seed-sets/2-user_info_2.json")),
        workouts: ("4-workout_2.json", include_str!("../seed-sets/4-workout_2.json")),
        gym_logins: ("5-gym_logins_2.csv", include_str!("../seed-sets/5-gym_logins_2.csv")),
    },
];

/// One seed set: (file name, contents) of each source file.
#[derive(Debug, Clone, Copy)]
pub struct SeedSet {
    /// Registrations CSV.
    pub registered_users: (&'static str, &'static str),
    /// `user_info` envelopes.
    pub user_info: (&'static str, &'static str),
    /// `workout` envelopes.
    pub workouts: (&'static str, &'static str),
    /// Gym logins CSV.
    pub gym_logins: (&'static str, &'static str),
}
