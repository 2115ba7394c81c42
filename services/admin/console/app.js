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
    const area = $('notifications');
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
  }

  function logout(message) {
    sessionStorage.removeItem(SESSION_KEY);
    state.adminKey = null;
    state.keys.clear();
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
        failed('Could not load the keys', e);
      }
      return;
    }
    if (turn !== state.listTurn) return; // a newer search or page is on its way
    $('keys-table').removeAttribute('aria-busy');
    state.next = listing.next_cursor || null;
    renderKeys(listing.keys);
  }

  const dateFormat = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' });

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
    badge.setAttribute('aria-label', `${label}: ${on ? 'yes' : 'no'}`);
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

  function renderKeys(keys) {
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
      actions.append(
        rowButton('Edit', 'edit', key),
        rowButton('History', 'history', key),
        rowButton('Remove', 'remove', key, 'danger'),
      );
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
    empty.textContent = state.query
      ? `No API key matches “${state.query}”.`
      : 'No API keys yet. Add one with the Add button.';
    $('prev-page').disabled = state.page === 0;
    $('next-page').disabled = !state.next;
    const first = state.page * state.limit + 1;
    $('keys-summary').textContent = keys.length
      ? `Page ${state.page + 1} · keys ${first}–${first + keys.length - 1}${state.next ? '' : ' (last page)'}`
      : '';
  }

  function searchChanged() {
    clearTimeout(state.searchTimer);
    state.searchTimer = setTimeout(() => {
      const query = $('search').value.trim();
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
    if (!name) {
      $('create-error').textContent = 'Give the key a name.';
      $('create-name').focus();
      return;
    }
    const save = $('create-save');
    setBusy(save, true);
    let created;
    try {
      created = await api('POST', '/v1/keys', { name, read_only: $('create-read-only').checked });
    } catch (e) {
      if (e.status === 422 || e.status === 400) {
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

  function openEdit(key) {
    state.editing = key;
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
    if (!name) {
      $('edit-error').textContent = 'A key needs a name.';
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
      if (e.status === 422 || e.status === 400) {
        $('edit-error').textContent = e.message;
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
