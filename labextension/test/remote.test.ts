import { describe, expect, it } from 'vitest';

import { remotePlacement } from '../src/model';
import { makeSession } from './fixtures';

describe('remotePlacement', () => {
  it('says where a remote kernel runs', () => {
    const session = makeSession({
      process_id: null,
      provisioner: {
        name: 'distributed-provisioner',
        local: false,
        host: 'gpu-3',
        pid: 812
      }
    });
    expect(remotePlacement(session)).toEqual({
      label: 'on gpu-3',
      title:
        'Runs on gpu-3 through distributed-provisioner, pid 812 there: CPU and memory are not measured'
    });
  });

  it('copes with a provisioner that names no host or pid', () => {
    const session = makeSession({
      provisioner: { name: 'k8s', local: false, host: null, pid: null }
    });
    expect(remotePlacement(session)?.label).toBe('on a remote host');
    expect(remotePlacement(session)?.title).toBe(
      'Runs on a remote host through k8s: CPU and memory are not measured'
    );
  });

  it('is null for a local kernel, none, or a server that does not say', () => {
    const local = {
      name: 'local-provisioner',
      local: true,
      host: null,
      pid: 4242
    };
    expect(remotePlacement(makeSession({ provisioner: local }))).toBeNull();
    expect(remotePlacement(makeSession({ provisioner: null }))).toBeNull();
    expect(remotePlacement(makeSession())).toBeNull();
  });
});
