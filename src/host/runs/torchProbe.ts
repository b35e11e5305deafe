// Which PyTorch a target has, for Start Training's engine choice: the shared probe script
// (src/shared/node/python.ts) run with each candidate interpreter, here or over an SSH connection.
// A found torch is remembered per target for the session (probing imports torch: seconds); a
// missing one is asked again next time, so installing it needs no reload.
import { searchTorch, type TorchProbe, type TorchSearch } from '../../shared/node/python';

/** What to install, said in the editor (the CLI's hint names its flags instead). */
export function editorInstallHint(where: string): string {
  return (
    `Install PyTorch for Python 3${where} (pip install torch; on Debian/Ubuntu: apt-get install python3-torch)` +
    (where ? '.' : ', or set steelscope.pythonPath to a python3 that has it.')
  );
}

export class TorchProbeCache {
  private readonly found = new Map<string, Promise<TorchSearch>>();

  /**
   * @param probe runs the probe with one interpreter; undefined when it cannot be run.
   * @param where ' on gpu-box' over SSH, '' here: for the install hint.
   */
  constructor(
    private readonly probe: (python: string) => Promise<TorchProbe | undefined>,
    private readonly where: string,
  ) {}

  /** The torch of the first candidate that has one (cached while found), or what to install. */
  search(candidates: string[]): Promise<TorchSearch> {
    const key = candidates.join('\n');
    const cached = this.found.get(key);
    if (cached) return cached;
    const pending = searchTorch(candidates, this.probe, editorInstallHint(this.where));
    this.found.set(key, pending);
    void pending.then(
      (r) => 'reason' in r && this.found.delete(key),
      () => this.found.delete(key),
    );
    return pending;
  }
}
