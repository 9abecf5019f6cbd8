// Accessibility checks with axe-core (npm): its source is evaluated in the page through
// the DevTools protocol (page.evaluate), which the page's CSP (script-src 'self') does
// not govern — no script tag is added and the CSP stays as the server sends it.

import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import assert from 'node:assert/strict';

const require = createRequire(import.meta.url);
const AXE_SOURCE = readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');

/**
 * Runs axe on the page as it is now (`state` names it in the failure) and fails with each
 * violation's rule, impact and the elements it found, if there is any. WCAG 2.x A and AA
 * rules and axe's best practices.
 */
export async function assertAccessible(page, state) {
  const hasAxe = await page.evaluate(() => typeof window.axe !== 'undefined');
  if (!hasAxe) await page.evaluate(AXE_SOURCE);
  const violations = await page.evaluate(async () => {
    const result = await window.axe.run(document, {
      runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice'] },
      resultTypes: ['violations'],
    });
    return result.violations.map((v) => ({
      rule: v.id,
      impact: v.impact,
      help: v.help,
      nodes: v.nodes.map((n) => `${n.target.join(' ')} :: ${n.failureSummary?.split('\n').slice(0, 2).join(' ')}`),
    }));
  });
  assert.deepEqual(violations, [], `axe found violations on ${state}:\n${JSON.stringify(violations, null, 2)}`);
}
