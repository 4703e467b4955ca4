/**
 * The pagination of a keyset (cursor) page, shared by the list routes: the rows were read with one row
 * more than `limit`, so a next page exists exactly when that extra row came back. No counts on cursor pages.
 */
export function cursorPage<T>(rows: T[], limit: number, encode: (last: T) => string) {
  const pageRows = rows.slice(0, limit);
  const last = pageRows[pageRows.length - 1];
  return {
    rows: pageRows,
    pagination: {
      current_page: null,
      page_size: limit,
      total_pages: null,
      total_records: null,
      total_is_exact: null,
      next_cursor: rows.length > limit && last ? encode(last) : null,
    },
  };
}
