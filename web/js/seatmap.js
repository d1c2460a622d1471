// The seat map of one seated section: a grid of seat buttons, one row per
// seat row, coloured free/held/sold/selected. Updated in place on refresh, so
// focus and selection survive. Keyboard: one seat is in the tab order; arrow
// keys move between seats, Home/End to a row's ends, Space/Enter toggles.

import { h, fill } from './dom.js';
import { groupRows } from './format.js';

/** Seats drawn at most at once; bigger sections page through their rows. */
export const MAX_SEATS_SHOWN = 2400;

export class SeatMap {
  /**
   * @param {object} section  the catalog section ({id, name, rows, seats_per_row})
   * @param {Set<string>} selected  seat ids chosen (shared with the page)
   * @param {(id: string, chosen: boolean) => void} onToggle
   */
  constructor(section, selected, onToggle) {
    this.section = section;
    this.selected = selected;
    this.onToggle = onToggle;
    this.buttons = new Map();
    this.seats = [];
    this.focusId = null;
    const perRow = Math.max(1, section.seats_per_row || 1);
    this.rowsPerPage = Math.max(1, Math.floor(MAX_SEATS_SHOWN / perRow));
    this.firstRow = 1;
    this.grid = h('div', {
      class: 'seat-grid',
      role: 'group',
      'aria-label': `Seats in ${section.name}`,
      onkeydown: (e) => this.key(e),
    });
    this.pager = h('div', { class: 'row-pager' });
    this.el = h('div', { class: 'seatmap', 'data-testid': 'seat-map', 'data-section-id': section.id },
      h('div', { class: 'stage', 'aria-hidden': 'true' }, 'Stage'),
      this.pager,
      this.grid);
  }

  /** Draws or updates from GET …/seats' `seats`. */
  update(seats) {
    this.seats = seats;
    const rows = groupRows(seats);
    const shown = rows.filter((r) => r.row >= this.firstRow && r.row < this.firstRow + this.rowsPerPage);
    const ids = shown.flatMap((r) => r.seats.map((s) => s.id));
    const same = ids.length === this.buttons.size && ids.every((id) => this.buttons.has(id));
    if (!same) this.build(shown, rows.length);
    for (const r of shown) for (const s of r.seats) this.paint(s);
  }

  build(shown, totalRows) {
    this.buttons.clear();
    const rowsEls = shown.map((r) => {
      const row = h('div', { class: 'seat-row', role: 'group', 'aria-label': `Row ${r.row}` },
        h('span', { class: 'row-label', 'aria-hidden': 'true' }, String(r.row)));
      for (const s of r.seats) {
        const b = h('button', {
          type: 'button',
          class: 'seat',
          tabindex: '-1',
          'data-testid': 'seat',
          'data-seat-id': s.id,
          'data-row': s.row,
          'data-number': s.number,
          onclick: () => this.toggle(s.id),
        }, String(s.number));
        this.buttons.set(s.id, b);
        row.append(b);
      }
      return row;
    });
    fill(this.grid, rowsEls);
    const focus = this.buttons.get(this.focusId) || this.buttons.values().next().value;
    if (focus) focus.tabIndex = 0;
    this.drawPager(totalRows);
  }

  drawPager(totalRows) {
    if (totalRows <= this.rowsPerPage) {
      fill(this.pager);
      return;
    }
    const last = Math.min(totalRows, this.firstRow + this.rowsPerPage - 1);
    const go = (first) => {
      this.firstRow = Math.max(1, Math.min(first, totalRows));
      this.update(this.seats);
    };
    fill(this.pager,
      h('button', { type: 'button', class: 'secondary', disabled: this.firstRow <= 1, onclick: () => go(this.firstRow - this.rowsPerPage) }, 'Previous rows'),
      h('span', {}, ` Rows ${this.firstRow}–${last} of ${totalRows} `),
      h('button', { type: 'button', class: 'secondary', disabled: last >= totalRows, onclick: () => go(this.firstRow + this.rowsPerPage) }, 'Next rows'));
  }

  paint(s) {
    const b = this.buttons.get(s.id);
    if (!b) return;
    const chosen = this.selected.has(s.id);
    const state = chosen ? 'selected' : s.status;
    if (b.dataset.state === state) return;
    b.dataset.state = state;
    b.dataset.status = s.status;
    b.className = `seat ${state}`;
    b.setAttribute('aria-pressed', chosen ? 'true' : 'false');
    b.setAttribute('aria-disabled', s.status === 'free' ? 'false' : 'true');
    const what = chosen ? 'selected' : s.status === 'free' ? 'available' : s.status === 'held' ? 'on hold by someone' : 'sold';
    b.setAttribute('aria-label', `Row ${s.row}, seat ${s.number}, ${what}`);
    b.title = `Row ${s.row}, seat ${s.number} — ${what}`;
  }

  toggle(id) {
    const seat = this.seats.find((s) => s.id === id);
    if (!seat) return;
    this.setFocus(id);
    if (this.selected.has(id)) {
      this.selected.delete(id);
    } else if (seat.status === 'free') {
      this.selected.add(id);
    } else {
      return;
    }
    this.paint(seat);
    this.onToggle(id, this.selected.has(id));
  }

  setFocus(id) {
    const next = this.buttons.get(id);
    if (!next) return;
    for (const b of this.buttons.values()) b.tabIndex = -1;
    next.tabIndex = 0;
    this.focusId = id;
    next.focus();
  }

  key(e) {
    const b = e.target.closest('.seat');
    if (!b) return;
    const row = Number(b.dataset.row);
    const num = Number(b.dataset.number);
    const find = (r, n) => this.seats.find((s) => s.row === r && s.number === n && this.buttons.has(s.id));
    const rowSeats = this.seats.filter((s) => s.row === row && this.buttons.has(s.id));
    let target = null;
    switch (e.key) {
      case 'ArrowRight': target = find(row, num + 1); break;
      case 'ArrowLeft': target = find(row, num - 1); break;
      case 'ArrowDown': target = find(row + 1, num); break;
      case 'ArrowUp': target = find(row - 1, num); break;
      case 'Home': target = rowSeats[0]; break;
      case 'End': target = rowSeats[rowSeats.length - 1]; break;
      default: return;
    }
    e.preventDefault();
    if (target) this.setFocus(target.id);
  }

  /** Marks seats as taken at once (a 409 named them) until the next refresh says otherwise. */
  markTaken(ids) {
    for (const id of ids) {
      const s = this.seats.find((x) => x.id === id);
      if (s) {
        s.status = 'held';
        this.selected.delete(id);
        this.paint(s);
      }
    }
  }
}

/** The colour key shown with every seat map. */
export function legend() {
  const item = (cls, text) => h('li', {}, h('span', { class: `swatch ${cls}`, 'aria-hidden': 'true' }), text);
  return h('ul', { class: 'legend', 'data-testid': 'legend', 'aria-label': 'Seat colours' },
    item('free', 'Available'), item('selected', 'Your selection'), item('held', 'On hold'), item('sold', 'Sold'));
}
