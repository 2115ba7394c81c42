// keyledger console: plain JavaScript against the admin API on this origin.
// The admin key lives in this tab's sessionStorage (never in persistent
// storage, never in a URL); a new key's secret lives only in the "New API Key
// Created" dialog and is dropped when it closes. Every piece of data reaches
// the page through textContent, never parsed as markup.
'use strict';

(() => {
  const SESSION_KEY = 'keyledger.console.adminKey';
  const SEARCH_DELAY_MS = 250;
  const MAX_NOTIFICATIONS = 4;
  const MAX_NAME_CHARS = 200;
  // A whole API key: 40 letters and digits. Searching for one searches its
  // public prefix instead, so the secret never reaches the server or the page.
  const WHOLE_KEY = /^[0-9A-Za-z]{40}$/;

  const $ = (id) => document.getElementById(id);
  const state = {
    adminKey: null,
    query: '',
    limit: 25,
    cursors: [null], // cursors[i] is the cursor that opens page i
    page: 0,
    next: null,
    keys: new Map(),
    listTurn: 0,
    editing: null,
    removing: null,
    me: null, // this session's own admin key, as the list shows it
  };

  class ApiError extends Error {
    constructor(status, code, message) {
      super(message);
      this.status = status;
      this.code = code;
    }
  }

  // ---- the admin API ------------------------------------------------------

  async function api(method, path, body) {
    const headers = { Authorization: `Bearer ${state.adminKey}`, Accept: 'application/json' };
    const init = { method, headers, cache: 'no-store', credentials: 'omit', redirect: 'error' };
    if (body !== undefined) {
      headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(path, init);
    } catch {
      throw new ApiError(0, 'network', 'The admin service cannot be reached. Check that it is running.');
    }
    const text = await response.text();
    let data = null;
    try {
      data = text ? JSON.parse(text) : null;
    } catch {
      data = null;
    }
    if (!response.ok) {
      const error = (data && data.error) || {};
      throw new ApiError(response.status, error.code || `http_${response.status}`,
        error.message || `The admin service answered ${response.status}.`);
    }
    return data;
  }

  // A failed call: an admin key that stopped working ends the session.
  function failed(what, error) {
    if (error.status === 401 && state.adminKey) {
      logout('Your admin key is no longer accepted: it was disabled or removed. Log in with another admin key.');
      return;
    }
    notify(`${what}: ${error.message}`, 'error');
  }

  // ---- notifications -------------------------------------------------------

  // A modal dialog makes the rest of the page inert: while one is open, the
  // notifications live inside it, so they stay visible, clickable and announced.
  function placeNotifications() {
    const area = $('notifications');
    const home = document.querySelector('dialog[open]') || document.body;
    if (area.parentElement !== home) home.append(area);
    return area;
  }

  function notify(message, kind = 'ok') {
    const note = document.createElement('div');
    note.className = `toast toast-${kind}`;
    note.setAttribute('role', kind === 'error' ? 'alert' : 'status');
    const text = document.createElement('span');
    text.textContent = message;
    const close = document.createElement('button');
    close.type = 'button';
    close.className = 'toast-close';
    close.setAttribute('aria-label', 'Dismiss notification');
    close.textContent = '×';
    close.addEventListener('click', () => note.remove());
    note.append(text, close);
    const area = placeNotifications();
    area.append(note);
    while (area.children.length > MAX_NOTIFICATIONS) area.firstElementChild.remove();
    setTimeout(() => note.remove(), kind === 'error' ? 12000 : 6000);
  }

  // ---- session -------------------------------------------------------------

  async function login(event) {
    event.preventDefault();
    const input = $('login-key');
    const candidate = input.value.trim();
    const error = $('login-error');
    error.textContent = '';
    if (!candidate) {
      error.textContent = 'Enter an admin key.';
      input.focus();
      return;
    }
    state.adminKey = candidate;
    $('login-submit').disabled = true;
    try {
      await api('GET', '/v1/keys?limit=1');
    } catch (e) {
      state.adminKey = null;
      error.textContent = loginMessage(e);
      input.select();
      input.focus();
      return;
    } finally {
      $('login-submit').disabled = false;
    }
    input.value = '';
    sessionStorage.setItem(SESSION_KEY, candidate);
    enter();
  }

  function loginMessage(e) {
    if (e.status === 401) return 'That admin key was not accepted: it is mistyped, unknown, disabled or removed.';
    if (e.code === 'bootstrap_limited') {
      return 'That is the bootstrap token: it can only create the first admin keys. Log in with an admin key.';
    }
    return e.message;
  }

  function enter() {
    $('login-view').hidden = true;
    for (const id of ['keys-view', 'menu', 'logout', 'who']) $(id).hidden = false;
    $('who').textContent = `admin key ${state.adminKey.slice(0, 8)}`;
    showKeys();
    whoAmI();
  }

  // The session's own admin key: marked in the list, warned about before it
  // is disabled or removed, and read-only admins are not offered changes.
  async function whoAmI() {
    const prefix = state.adminKey.slice(0, 8);
    let listing;
    try {
      listing = await api('GET', `/v1/keys?q=${encodeURIComponent(prefix)}&limit=10`);
    } catch {
      return;
    }
    state.me = (listing.keys || []).find((k) => k.admin && k.prefix === prefix) || null;
    const readOnly = Boolean(state.me && state.me.read_only);
    $('who').textContent = `admin key ${prefix}${readOnly ? ' (read-only)' : ''}`;
    document.body.classList.toggle('read-only-admin', readOnly);
    $('add-key').disabled = readOnly;
    $('add-key').title = readOnly ? 'This admin key is read-only: it can list and read, not change' : '';
    if (state.loaded) renderKeys([...state.keys.values()]);
  }

  function logout(message) {
    sessionStorage.removeItem(SESSION_KEY);
    state.adminKey = null;
    state.me = null;
    state.loaded = false;
    state.keys.clear();
    state.query = '';
    state.limit = 25;
    $('search').value = '';
    $('page-size').value = '25';
    document.body.classList.remove('read-only-admin');
    $('add-key').disabled = false;
    $('keys-body').replaceChildren();
    for (const dialog of document.querySelectorAll('dialog[open]')) dialog.close();
    for (const id of ['keys-view', 'menu', 'logout', 'who']) $(id).hidden = true;
    $('login-view').hidden = false;
    $('login-error').textContent = message || '';
    $('login-key').focus();
  }

  // ---- the keys page -------------------------------------------------------

  function showKeys() {
    state.cursors = [null];
    state.page = 0;
    loadPage();
    $('search').focus();
  }

  async function loadPage() {
    const turn = ++state.listTurn;
    const params = new URLSearchParams({ limit: String(state.limit) });
    if (state.query) params.set('q', state.query);
    const cursor = state.cursors[state.page];
    if (cursor) params.set('cursor', cursor);
    $('keys-table').setAttribute('aria-busy', 'true');
    let listing;
    try {
      listing = await api('GET', `/v1/keys?${params}`);
    } catch (e) {
      if (turn === state.listTurn) {
        $('keys-table').removeAttribute('aria-busy');
        state.next = null;
        renderKeys([], 'The keys could not be loaded.');
        failed('Could not load the keys', e);
      }
      return;
    }
    if (turn !== state.listTurn) return; // a newer search or page is on its way
    state.loaded = true;
    if (listing.keys.length === 0 && state.page > 0) {
      // The last key of the last page went away: show the page before.
      state.page -= 1;
      loadPage();
      return;
    }
    $('keys-table').removeAttribute('aria-busy');
    state.next = listing.next_cursor || null;
    renderKeys(listing.keys);
  }

  const dateFormat = new Intl.DateTimeFormat(undefined, {
    year: 'numeric', month: 'short', day: 'numeric',
    hour: '2-digit', minute: '2-digit', second: '2-digit', timeZoneName: 'short',
  });

  function timeCell(iso) {
    const cell = document.createElement('td');
    const time = document.createElement('time');
    time.dateTime = iso;
    time.title = iso;
    const date = new Date(iso);
    time.textContent = Number.isNaN(date.getTime()) ? iso : dateFormat.format(date);
    cell.append(time);
    return cell;
  }

  function flagCell(on, label) {
    const cell = document.createElement('td');
    const badge = document.createElement('span');
    badge.className = on ? 'badge on' : 'badge off';
    badge.textContent = on ? 'Yes' : 'No';
    badge.title = `${label}: ${on ? 'yes' : 'no'}`;
    cell.append(badge);
    return cell;
  }

  function textCell(text, className) {
    const cell = document.createElement('td');
    if (className) cell.className = className;
    cell.textContent = text;
    return cell;
  }

  function rowButton(label, action, key, className) {
    const button = document.createElement('button');
    button.type = 'button';
    button.className = `button small ${className || ''}`.trim();
    button.textContent = label;
    button.dataset.action = action;
    button.dataset.id = key.id;
    button.setAttribute('aria-label', `${label} ${key.name}`);
    return button;
  }

  function renderKeys(keys, emptyText) {
    state.keys = new Map(keys.map((k) => [k.id, k]));
    const rows = keys.map((key) => {
      const row = document.createElement('tr');
      row.dataset.id = key.id;
      const name = textCell(key.name, 'name');
      name.dataset.label = 'Name';
      if (key.admin) {
        const badge = document.createElement('span');
        badge.className = 'badge admin';
        badge.textContent = 'admin';
        name.append(' ', badge);
      }
      if (state.me && key.id === state.me.id) {
        const badge = document.createElement('span');
        badge.className = 'badge me';
        badge.textContent = 'you';
        badge.title = 'The admin key this session is logged in with';
        name.append(' ', badge);
      }
      if (key.untrusted) {
        const badge = document.createElement('span');
        badge.className = 'badge danger';
        badge.textContent = 'frozen';
        badge.title = key.untrusted;
        name.append(' ', badge);
      }
      const prefix = textCell(key.prefix, 'prefix');
      const cells = [
        name,
        prefix,
        flagCell(key.read_only, 'Read Only'),
        flagCell(key.enabled, 'Enabled'),
        timeCell(key.created_at),
        timeCell(key.updated_at),
      ];
      ['Name', 'Prefix', 'Read Only', 'Enabled', 'Created', 'Last changed']
        .forEach((label, i) => { cells[i].dataset.label = label; });
      const actions = document.createElement('td');
      actions.className = 'row-actions';
      const edit = rowButton('Edit', 'edit', key);
      const remove = rowButton('Remove', 'remove', key, 'danger');
      if (state.me && state.me.read_only) {
        edit.disabled = true;
        remove.disabled = true;
      }
      actions.append(edit, rowButton('History', 'history', key), remove);
      row.append(...cells, actions);
      return row;
    });
    // Re-rendering must not lose the keyboard user's place: a focused row
    // button hands the focus to its successor.
    const focused = document.activeElement;
    const keep = focused && focused.closest && focused.closest('#keys-body') && focused.dataset.action
      ? `button[data-action="${focused.dataset.action}"][data-id="${focused.dataset.id}"]`
      : null;
    $('keys-body').replaceChildren(...rows);
    if (keep) {
      const successor = $('keys-body').querySelector(keep);
      if (successor) successor.focus();
      else $('search').focus();
    }
    const empty = $('keys-empty');
    empty.hidden = keys.length > 0;
    empty.textContent = emptyText || (state.query
      ? `No API key matches “${state.query}”.`
      : 'No API keys yet. Add one with the Add button.');
    // A pager button that disables itself hands the focus to its partner.
    const lost = document.activeElement;
    $('prev-page').disabled = state.page === 0;
    $('next-page').disabled = !state.next;
    if (lost && lost.disabled && (lost.id === 'prev-page' || lost.id === 'next-page')) {
      const partner = lost.id === 'prev-page' ? $('next-page') : $('prev-page');
      (partner.disabled ? $('search') : partner).focus();
    }
    const first = state.page * state.limit + 1;
    $('keys-summary').textContent = keys.length
      ? `Page ${state.page + 1} · keys ${first}–${first + keys.length - 1}${state.next ? '' : ' (last page)'}`
      : '';
  }

  function searchChanged() {
    clearTimeout(state.searchTimer);
    state.searchTimer = setTimeout(() => {
      let query = $('search').value.trim();
      if (WHOLE_KEY.test(query)) {
        query = query.slice(0, 8);
        $('search').value = query;
        notify('That looks like a whole API key: searching for its prefix instead.');
      }
      if (query === state.query) return;
      state.query = query;
      state.cursors = [null];
      state.page = 0;
      loadPage();
    }, SEARCH_DELAY_MS);
  }

  function nextPage() {
    if (!state.next) return;
    state.cursors[state.page + 1] = state.next;
    state.page += 1;
    loadPage();
  }

  function prevPage() {
    if (state.page === 0) return;
    state.page -= 1;
    loadPage();
  }

  // ---- dialogs -------------------------------------------------------------

  function open(dialog, focusId) {
    dialog.returnFocus = document.activeElement;
    dialog.showModal();
    if (focusId) $(focusId).focus();
  }

  function closeDialog(dialog) {
    // The dialog's close event comes a task later: drop a secret at once.
    if (dialog.id === 'secret-dialog') forgetSecret();
    if (dialog.open) dialog.close();
  }

  function onDialogClosed(dialog) {
    const back = dialog.returnFocus;
    dialog.returnFocus = null;
    if (document.querySelector('dialog[open]')) return; // another dialog took over
    // A row button may have been redrawn meanwhile: focus its successor.
    const target = back && !document.contains(back) && back.dataset && back.dataset.action
      ? $('keys-body').querySelector(`button[data-action="${back.dataset.action}"][data-id="${back.dataset.id}"]`)
      : back;
    if (target && document.contains(target) && !target.closest('[hidden]')) {
      target.focus();
    } else if (!$('keys-view').hidden) {
      $('add-key').focus();
    }
  }

  function setBusy(button, busy) {
    button.disabled = busy;
    button.setAttribute('aria-busy', String(busy));
  }

  // Add ------------------------------------------------------------------

  function openCreate() {
    $('create-name').value = '';
    $('create-read-only').checked = true;
    $('create-error').textContent = '';
    open($('create-dialog'), 'create-name');
  }

  async function saveCreate(event) {
    event.preventDefault();
    const name = $('create-name').value.trim();
    const problem = nameProblem(name);
    if (problem) {
      $('create-error').textContent = problem;
      $('create-name').focus();
      return;
    }
    const save = $('create-save');
    setBusy(save, true);
    let created;
    try {
      created = await api('POST', '/v1/keys', { name, read_only: $('create-read-only').checked });
    } catch (e) {
      if (e.status === 422 || e.status === 400 || e.status === 403) {
        $('create-error').textContent = e.message;
        $('create-name').focus();
      } else {
        failed('Could not create the key', e);
      }
      return;
    } finally {
      setBusy(save, false);
    }
    const returnFocus = $('create-dialog').returnFocus;
    $('create-dialog').returnFocus = null;
    closeDialog($('create-dialog'));
    $('secret-name').textContent = created.name;
    $('secret-key').value = created.key;
    const dialog = $('secret-dialog');
    open(dialog, 'secret-key');
    dialog.returnFocus = returnFocus;
    $('secret-key').select();
    notify(`Saved: created “${created.name}” (${created.prefix}).`);
    loadPage();
  }

  function nameProblem(name) {
    if (!name) return 'Give the key a name.';
    const chars = [...name].length;
    if (chars > MAX_NAME_CHARS) return `A name has at most ${MAX_NAME_CHARS} characters; this one has ${chars}.`;
    return null;
  }

  async function copyKey() {
    const input = $('secret-key');
    try {
      await navigator.clipboard.writeText(input.value);
    } catch {
      input.select();
      if (!document.execCommand('copy')) {
        notify('Could not copy: select the key and copy it by hand.', 'error');
        return;
      }
    }
    notify('Copied the key to the clipboard.');
  }

  // The secret leaves the page with the dialog, however it is closed.
  function forgetSecret() {
    $('secret-key').value = '';
    $('secret-name').textContent = '';
  }

  // Edit ------------------------------------------------------------------

  async function openEdit(listed) {
    // Another admin may have changed it since the list was drawn.
    let key = listed;
    try {
      key = await api('GET', `/v1/keys/${encodeURIComponent(listed.id)}`);
    } catch (e) {
      if (e.status === 404) {
        failed(`Could not edit “${listed.name}”`, new ApiError(404, e.code, 'it was removed in the meantime.'));
        loadPage();
        return;
      }
    }
    state.editing = key;
    $('edit-self').hidden = !(state.me && key.id === state.me.id);
    $('edit-prefix').textContent = key.prefix;
    $('edit-name').value = key.name;
    $('edit-read-only').checked = key.read_only;
    $('edit-enabled').checked = key.enabled;
    $('edit-error').textContent = '';
    open($('edit-dialog'), 'edit-name');
  }

  async function saveEdit(event) {
    event.preventDefault();
    const key = state.editing;
    if (!key) return;
    const change = {};
    const name = $('edit-name').value.trim();
    const problem = nameProblem(name);
    if (problem) {
      $('edit-error').textContent = problem;
      $('edit-name').focus();
      return;
    }
    if (name !== key.name) change.name = name;
    if ($('edit-read-only').checked !== key.read_only) change.read_only = $('edit-read-only').checked;
    if ($('edit-enabled').checked !== key.enabled) change.enabled = $('edit-enabled').checked;
    if (Object.keys(change).length === 0) {
      closeDialog($('edit-dialog'));
      notify('Nothing to save: no field changed.');
      return;
    }
    const save = $('edit-save');
    setBusy(save, true);
    let updated;
    try {
      updated = await api('PATCH', `/v1/keys/${encodeURIComponent(key.id)}`, change);
    } catch (e) {
      if (e.status === 422 || e.status === 400 || e.status === 403) {
        $('edit-error').textContent = e.message;
        $('edit-name').focus();
      } else if (e.status === 409) {
        $('edit-error').textContent = `${e.message} Reload the list and try again.`;
        loadPage();
      } else if (e.status === 404) {
        closeDialog($('edit-dialog'));
        failed('Could not save the key', new ApiError(404, e.code, 'it was removed in the meantime.'));
        loadPage();
      } else {
        failed('Could not save the key', e);
      }
      return;
    } finally {
      setBusy(save, false);
    }
    state.editing = null;
    closeDialog($('edit-dialog'));
    notify(`Saved “${updated.name}”: ${describeKey(updated)}.`);
    loadPage();
  }

  function describeKey(key) {
    return `${key.read_only ? 'read-only' : 'read-write'}, ${key.enabled ? 'enabled' : 'disabled'}`;
  }

  // Remove ----------------------------------------------------------------

  function openRemove(key) {
    state.removing = key;
    $('remove-name').textContent = key.name;
    $('remove-prefix').textContent = key.prefix;
    const self = Boolean(state.me && key.id === state.me.id);
    $('remove-effect').textContent = self
      ? 'This is the admin key you are logged in with: removing it logs you out.'
      : key.admin
        ? 'It can no longer manage keys, at once.'
        : 'Every API node rejects it at once.';
    open($('remove-dialog'), 'remove-cancel');
  }

  async function confirmRemove() {
    const key = state.removing;
    if (!key) return;
    const confirm = $('remove-confirm');
    setBusy(confirm, true);
    try {
      await api('DELETE', `/v1/keys/${encodeURIComponent(key.id)}`);
    } catch (e) {
      closeDialog($('remove-dialog'));
      failed(`Could not remove “${key.name}”`, e);
      if (e.status === 404) loadPage();
      return;
    } finally {
      setBusy(confirm, false);
    }
    state.removing = null;
    $('remove-dialog').returnFocus = null;
    closeDialog($('remove-dialog'));
    notify(`Removed “${key.name}” (${key.prefix}): its access is revoked.`);
    loadPage();
  }

  // History ---------------------------------------------------------------

  function actorText(actor) {
    if (!actor) return '';
    if (actor.type === 'bootstrap') return 'bootstrap token';
    if (actor.type === 'admin_key') return `admin key ${actor.prefix}`;
    return actor.type || '';
  }

  function originText(origin) {
    if (!origin) return '';
    return [origin.ip, origin.user_agent].filter(Boolean).join(' · ');
  }

  async function openHistory(key) {
    let answer;
    try {
      answer = await api('GET', `/v1/keys/${encodeURIComponent(key.id)}/history`);
    } catch (e) {
      failed(`Could not load the history of “${key.name}”`, e);
      return;
    }
    $('history-name').textContent = `“${key.name}” (${key.prefix})`;
    const rows = answer.history.map((entry) => {
      const row = document.createElement('tr');
      if (entry.type === 'Untrusted') row.className = 'untrusted';
      row.append(
        textCell(String(entry.seq)),
        timeCell(entry.at || entry.stored_at),
        textCell(entry.type),
        textCell(entry.change),
        textCell(actorText(entry.actor)),
        textCell(originText(entry.origin)),
      );
      return row;
    });
    $('history-body').replaceChildren(...rows);
    open($('history-dialog'));
  }

  // ---- wiring --------------------------------------------------------------

  function rowAction(event) {
    const button = event.target.closest('button[data-action]');
    if (!button) return;
    const key = state.keys.get(button.dataset.id);
    if (!key) return;
    if (button.dataset.action === 'edit') openEdit(key);
    else if (button.dataset.action === 'remove') openRemove(key);
    else if (button.dataset.action === 'history') openHistory(key);
  }

  function init() {
    $('login-form').addEventListener('submit', login);
    $('logout').addEventListener('click', () => logout('You are logged out.'));
    $('menu-keys').addEventListener('click', (event) => {
      event.preventDefault();
      showKeys();
    });
    $('add-key').addEventListener('click', openCreate);
    $('create-form').addEventListener('submit', saveCreate);
    $('edit-form').addEventListener('submit', saveEdit);
    $('remove-confirm').addEventListener('click', confirmRemove);
    $('copy-key').addEventListener('click', copyKey);
    $('secret-close').addEventListener('click', () => closeDialog($('secret-dialog')));
    $('search').addEventListener('input', searchChanged);
    $('search').addEventListener('change', searchChanged);
    $('prev-page').addEventListener('click', prevPage);
    $('next-page').addEventListener('click', nextPage);
    $('page-size').addEventListener('change', () => {
      state.limit = Number($('page-size').value);
      showKeys();
    });
    $('keys-body').addEventListener('click', rowAction);
    for (const dialog of document.querySelectorAll('dialog')) {
      dialog.addEventListener('close', () => onDialogClosed(dialog));
      for (const button of dialog.querySelectorAll('[data-close]')) {
        button.addEventListener('click', () => closeDialog(dialog));
      }
    }
    $('secret-dialog').addEventListener('close', forgetSecret);
    $('secret-dialog').addEventListener('cancel', (event) => {
      if ($('secret-key').value && !state.warnedEscape) {
        event.preventDefault();
        state.warnedEscape = true;
        notify('The key will not be shown again: copy it, then press Escape again or Close.');
      } else {
        forgetSecret();
      }
    });
    $('secret-dialog').addEventListener('close', () => { state.warnedEscape = false; });
    for (const dialog of document.querySelectorAll('dialog')) {
      // Notifications shown inside a dialog go back to the page with it.
      dialog.addEventListener('close', placeNotifications);
    }
    $('edit-dialog').addEventListener('close', () => { state.editing = null; });
    $('remove-dialog').addEventListener('close', () => { state.removing = null; });

    const saved = sessionStorage.getItem(SESSION_KEY);
    if (saved) {
      state.adminKey = saved;
      enter();
    } else {
      $('login-key').focus();
    }
  }

  init();
})();
