import { describe, expect, it } from 'vitest';
import { EdgeHubReportStore, routesCondition } from './edgehub-report.js';

const spec = { r1: { route: 'FROM /messages/* INTO $upstream' }, r2: { route: 'FROM /messages/modules/a/* INTO BrokeredEndpoint("/modules/b/inputs/in")', priority: 1 } };
const at = '2026-03-01T00:00:00Z';

describe('routesCondition', () => {
  it('is Unknown until the edge hub reports, never assumed True', () => {
    expect(routesCondition(spec, undefined)).toMatchObject({ status: 'Unknown', reason: 'EdgeHubNotReported' });
  });
  it('is True only when the edge hub runs exactly the spec routes', () => {
    expect(routesCondition(spec, { routes: { r2: { ...spec.r2 }, r1: { route: ` ${spec.r1.route} ` } }, reportedAt: at })).toMatchObject({ status: 'True', reason: 'RoutesLoaded' });
  });
  it('is Unknown (out of date) while the edge hub runs other routes', () => {
    expect(routesCondition(spec, { routes: { r1: spec.r1 }, reportedAt: at })).toMatchObject({ status: 'Unknown', reason: 'RoutesOutOfDate' });
    expect(routesCondition(spec, { routes: { ...spec, r2: { ...spec.r2, priority: 2 } }, reportedAt: at })).toMatchObject({ status: 'Unknown', reason: 'RoutesOutOfDate' });
  });
  it('is False with the edge hub reason when it rejected them', () => {
    expect(routesCondition(spec, { routes: {}, error: 'r2: unknown endpoint', reportedAt: at })).toEqual({ status: 'False', reason: 'RoutesRejected', message: 'The edge hub rejected the routes: r2: unknown endpoint' });
  });
});

describe('EdgeHubReportStore', () => {
  it('keeps one report per namespace and tells listeners', () => {
    const store = new EdgeHubReportStore();
    const seen: string[] = [];
    const off = store.onChange((ns) => seen.push(ns));
    store.set('dev1', { routes: {}, reportedAt: at });
    store.delete('dev1');
    store.delete('dev1');
    off();
    store.set('dev2', { routes: {}, reportedAt: at });
    expect(seen).toEqual(['dev1', 'dev1']);
    expect(store.get('dev2')).toEqual({ routes: {}, reportedAt: at });
    expect(store.get('dev1')).toBeUndefined();
  });
});
