// Errors a person can cause, said where they look and in their language: the server's
// error `code` (and `field`, for a rule on one field of a form) becomes a translated
// sentence shown beside that field, tied to it with aria-describedby/aria-invalid and
// announced by its aria-live region; anything else goes to the form's own alert line.

import { byId } from './dom.js';
import { t } from './i18n.js';

/** The nickname and password rules, as the server checks them (src/auth.rs). */
const NICKNAME_MIN = 3;
const NICKNAME_MAX = 32;
const PASSWORD_MIN = 8;
const PASSWORD_MAX = 256;

/** Which rule a refused nickname breaks, as a dictionary key. */
function nicknameProblem(nickname) {
  const n = [...(nickname || '').trim()];
  if (n.length < NICKNAME_MIN || n.length > NICKNAME_MAX) return 'error.nickname.length';
  if (!/^[\p{L}\p{N}]/u.test(n[0])) return 'error.nickname.start';
  if (n.some((c) => !/^[\p{L}\p{N}_.-]$/u.test(c))) return 'error.nickname.chars';
  return 'error.nickname';
}

/** Which rule a refused password breaks, as a dictionary key. */
function passwordProblem(password, nickname) {
  const n = [...(password || '')].length;
  if (n < PASSWORD_MIN) return 'error.password.short';
  if (n > PASSWORD_MAX) return 'error.password.long';
  if (password.toLowerCase() === (nickname || '').trim().toLowerCase()) return 'error.password.nickname';
  return 'error.password';
}

/**
 * What to tell the person about `err` (an ApiError or a plain Error with a translated
 * message) from a form whose values are `values`: `{field, text}`, `field` being the
 * form's field (nickname, password, themes, capabilities) or null for the whole form.
 */
export function explain(err, values = {}) {
  const vars = { limit: NICKNAME_MAX, min: PASSWORD_MIN, name: (values.nickname || '').trim() };
  switch (err?.code) {
    case 'network':
      return { field: null, text: t('error.network') };
    case 'rate_limited':
      return { field: null, text: t('error.rate_limited', { s: err.retryAfter || 60 }) };
    case 'unauthorized':
      return { field: values.form === 'login' ? 'password' : null, text: t(values.form === 'login' ? 'error.login' : 'conn.revoked') };
    case 'forbidden':
      return { field: null, text: t('error.forbidden') };
    case 'conflict':
      return { field: err.field || (values.form === 'register' ? 'nickname' : null), text: t('error.nickname.taken', vars) };
    case 'too_large':
      return { field: null, text: t('error.too_large') };
    case 'bad_request':
      if (err.field === 'nickname') return { field: 'nickname', text: t(nicknameProblem(values.nickname), vars) };
      if (err.field === 'password') return { field: 'password', text: t(passwordProblem(values.password || '', values.nickname), vars) };
      if (err.field === 'themes') return { field: 'themes', text: t('error.themes') };
      if (err.field === 'capabilities') return { field: 'capabilities', text: t('error.caps') };
      return { field: null, text: t('error.generic', { reason: err.message }) };
    case 'unavailable':
    case 'internal':
      return { field: null, text: t('error.server') };
    default:
      // Our own checks throw plain errors with a translated message and maybe a field.
      return { field: err?.field || null, text: err?.message || t('error.server') };
  }
}

/** Clears every error shown in `form`. */
export function clearErrors(form, formError) {
  formError.textContent = '';
  for (const el of form.querySelectorAll('.field-error')) el.textContent = '';
  for (const el of form.querySelectorAll('[aria-invalid]')) el.removeAttribute('aria-invalid');
}

/**
 * Shows `{field, text}` in `form`: beside the field (`${prefix}-${field}-error`, its input
 * marked invalid and focused, scrolled into view) or, for the whole form, in `formError`
 * (a role=alert line by the submit button, scrolled into view).
 */
export function showError(form, formError, prefix, { field, text }) {
  const slot = field ? byId(`${prefix}-${field === 'capabilities' ? 'caps' : field}-error`) : null;
  if (!slot) {
    formError.textContent = text;
    formError.scrollIntoView?.({ block: 'nearest' });
    return;
  }
  slot.textContent = text;
  const control = byId(`${prefix}-${field}`) || slot.closest('fieldset');
  control?.setAttribute('aria-invalid', 'true');
  const focusable = control?.matches?.('input') ? control : control?.querySelector('input');
  focusable?.focus();
  slot.scrollIntoView?.({ block: 'center' });
}
