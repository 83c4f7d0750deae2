/** `kedge manifest render` (filled in with the agent's renderer). */
export async function renderCommandAction(): Promise<void> {
  await Promise.resolve();
  process.stderr.write('kedge manifest render: not available yet\n');
  process.exitCode = 2;
}
