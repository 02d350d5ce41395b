/**
 * The readable horizon: the SQL expression every gap-safe reader of the log compares `log_xid` with.
 *
 * Rows with `log_xid` below the oldest transaction still running (`pg_snapshot_xmin` of the current
 * snapshot) are committed or rolled back for good: no transaction can still add a row below it. A reader
 * that only moves past rows below the horizon never skips a row committed later at a lower position.
 * Consequence: one long transaction anywhere in the database holds every reader back until it ends.
 *
 * Interpolate it with `sql.raw(READABLE_HORIZON)` (or into a raw statement); it takes no parameters.
 */
export const READABLE_HORIZON = 'pg_snapshot_xmin(pg_current_snapshot())';
