// Runs IAM policy simulations with @cloud-copilot/iam-simulate (pinned in package.json).
// Reads a JSON array of simulations on stdin and writes a JSON array of results on stdout,
// one per simulation, in order: {result, errors, identity, resource}. A batch costs one Node
// start-up (about half a second with the library's IAM action data loaded).
import { runSimulation } from '@cloud-copilot/iam-simulate'

const chunks = []
for await (const chunk of process.stdin) chunks.push(chunk)
const simulations = JSON.parse(Buffer.concat(chunks).toString('utf8'))

const results = []
for (const simulation of simulations) {
  const outcome = await runSimulation(simulation, { simulationMode: 'Strict' })
  if (outcome.resultType === 'error') {
    results.push({ result: 'Error', errors: outcome.errors })
    continue
  }
  const single = outcome.resultType === 'single' ? outcome.result : outcome.results[0]
  const analysis = single?.analysis ?? {}
  results.push({
    result: outcome.overallResult,
    identity: analysis.identityAnalysis?.result ?? null,
    resource: analysis.resourceAnalysis?.result ?? null,
    ignoredContextKeys: single?.ignoredContextKeys ?? [],
  })
}
process.stdout.write(JSON.stringify(results))
