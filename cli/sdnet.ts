#!/usr/bin/env node
// sdnet: pair your devices and keep them connected. Commander parses the arguments (well kept, typed, and its
// help output is what people expect); the commands talk only to the public API in actors/.
import { Command, Option } from 'commander'
import { initCommand, type StartFlags, startCommand, statusCommand, stopCommand } from './daemon-commands.ts'
import {
  devicesCommand,
  eventsCommand,
  listenCommand,
  pingCommand,
  revokeCommand,
  sendCommand,
} from './device-commands.ts'
import {
  dropAcceptCommand,
  dropAnswerCommand,
  dropFollowCommand,
  dropListCommand,
  dropSendCommand,
  dropWaitCommand,
} from './drop-commands.ts'
import type { GlobalOptions } from './options.ts'
import { createOutput, reportError } from './output.ts'
import { generateCommand, joinCommand, listCommand, sessionCommand } from './pair-commands.ts'
import { traceCommand, traceReplayCommand } from './trace-commands.ts'

const program = new Command('sdnet')
  .description('Find, pair and securely connect your own devices.')
  .option('--instance <name>', 'which instance on this machine (data under $XDG_DATA_HOME/sdnet/<name>)')
  .option('--data-dir <dir>', 'use this data directory instead of the instance one')
  .option('--json', 'print NDJSON, one object per line, for scripts')
  .option('--verbose', 'more logging, libp2p debug included')
  .option('--password <password>', 'unlocks (or, on init, encrypts) the device key; or set SDNET_PASSWORD')
  .showHelpAfterError()
  .exitOverride()

const globals = (): GlobalOptions => program.opts<GlobalOptions>()
const out = () => createOutput(globals().json === true)

program
  .command('init')
  .description('create this device identity (done by start on first use)')
  .option('--name <name>', 'the device name others see (default: host name)')
  .action((o: { name?: string }) => initCommand(globals(), o.name, out()))

program
  .command('start')
  .description('start the daemon in the background (or attached with --foreground)')
  .option('--foreground', 'stay attached and print readable logs')
  .addOption(new Option('--detached').hideHelp())
  .option('--listen <multiaddr...>', 'listen addresses (default /ip4/0.0.0.0/tcp/0)')
  .option('--no-mdns', 'do not use mDNS discovery')
  .option('--mdns-interface <ip>', 'use mDNS only on the interface with this IPv4 address (e.g. 127.0.0.1)')
  .option('--no-dht', 'do not run the Kademlia DHT service')
  .option(
    '--inspect [mode]',
    "record actor transitions for `sdnet trace` (secrets stripped); =stately also serves them to Stately's viewer on 127.0.0.1:8080",
  )
  .option('--no-inspect', 'stop recording actor transitions')
  .option(
    '--drop-dir <dir>',
    'where received drops land (default $XDG_DOWNLOAD_DIR/sdnet or ~/Downloads/sdnet)',
  )
  .option(
    '--accept-drops-from <device>',
    'accept drops from this paired device without asking (repeatable)',
    (device: string, devices: string[] | undefined) => [...(devices ?? []), device],
  )
  .option('--no-accept-drops-from', 'ask again for every drop')
  .action((o: StartFlags) => startCommand(globals(), o, out()))

const trace = program
  .command('trace')
  .description("follow what the daemon's actors do, live (start it with --inspect)")
  .action(() => traceCommand(globals(), out()))
trace
  .command('replay')
  .description('replay a recorded trace against the machines and check they reach the recorded states')
  .argument('<file>')
  .action((file: string) => traceReplayCommand(file, out()))

program
  .command('stop')
  .description('stop the daemon')
  .action(() => stopCommand(globals(), out()))
program
  .command('status')
  .description('show whether the daemon runs, and as whom')
  .action(() => statusCommand(globals(), out()))
program
  .command('devices')
  .description('list paired devices with their connection state, round-trip time and last contact')
  .action(() => devicesCommand(globals(), out()))
program
  .command('ping')
  .description('measure the round-trip time to a paired device (by id, id prefix or name)')
  .argument('<device>')
  .option('-c, --count <n>', 'how many pings', '4')
  .option('-i, --interval <seconds>', 'wait between pings', '1')
  .action((device: string, o: { count?: string; interval?: string }) =>
    pingCommand(globals(), device, o, out()),
  )
program
  .command('send')
  .description('send a message to a paired device under a protocol (text, or - / nothing for standard input)')
  .argument('<device>')
  .argument('<protocol>', 'e.g. chat/1')
  .argument('[text]')
  .action((device: string, protocol: string, text: string | undefined) =>
    sendCommand(globals(), device, protocol, text, out()),
  )
program
  .command('listen')
  .description('print the messages that paired devices send under a protocol')
  .argument('<protocol>')
  .action((protocol: string) => listenCommand(globals(), protocol, out()))
program
  .command('revoke')
  .description('stop trusting a paired device, on both sides when it is connected')
  .argument('<device>')
  .action((device: string) => revokeCommand(globals(), device, out()))
program
  .command('events')
  .description('follow the node events: discovery, pairing, connections, messages, drops, state changes')
  .action(() => eventsCommand(globals(), out()))

const drop = program
  .command('drop')
  .description('send files and folders to a paired device, and answer the drops others send')
  .argument('<device>', 'the paired device (id, id prefix or name)')
  .argument('<paths...>', 'files and folders (a folder goes whole)')
  .action((device: string, paths: string[]) => dropSendCommand(globals(), device, paths, out()))
drop
  .command('list')
  .description('list drops in progress or waiting for an answer, both ways')
  .action(() => dropListCommand(globals(), out()))
drop
  .command('wait')
  .description('wait for drops and ask about each one (prints them to answer later without a terminal)')
  .action(() => dropWaitCommand(globals(), out()))
drop
  .command('accept')
  .description('accept a drop, then show it until it ends')
  .argument('<id>', 'the drop id or a unique prefix (4+ characters)')
  .action((id: string) => dropAcceptCommand(globals(), id, out()))
drop
  .command('follow')
  .description('show a drop until it ends (one that `sdnet drop` or `accept` left running)')
  .argument('<id>')
  .action((id: string) => dropFollowCommand(globals(), id, out()))
for (const verb of ['reject', 'cancel'] as const) {
  drop
    .command(verb)
    .description(
      verb === 'reject' ? 'decline a drop offered to this device' : 'stop a drop, from either side',
    )
    .argument('<id>')
    .action((id: string) => dropAnswerCommand(globals(), verb, id, out()))
}

const pair = program.command('pair').description('pair this device with another one')
pair
  .command('generate')
  .description('show a 12-word code for the other device to join, then wait for it')
  .option('--auto-accept', 'pair with whoever proves the code, without asking')
  .option('--timeout <seconds>', 'how long the code stays valid (default 300)')
  .action((o: { autoAccept?: boolean; timeout?: string }) => generateCommand(globals(), o, out()))
pair
  .command('join')
  .description(
    'join with the code shown on the other device (as one argument or twelve; prompts when omitted)',
  )
  .argument('[words...]')
  .action((words: string[]) =>
    joinCommand(globals(), words.flatMap((w) => w.split(/\s+/)).filter(Boolean), out()),
  )
pair
  .command('list')
  .description('list pairing sessions in progress')
  .action(() => listCommand(globals(), out()))
for (const verb of ['accept', 'reject', 'cancel'] as const) {
  pair
    .command(verb)
    .description(`${verb} a pairing session`)
    .argument('<session>')
    .action((sessionId: string) => sessionCommand(globals(), verb, sessionId, out()))
}

try {
  await program.parseAsync(process.argv)
} catch (err) {
  const code = (err as { code?: string }).code
  if (code === 'commander.helpDisplayed' || code === 'commander.version' || code === 'commander.help') {
    process.exitCode = 0
  } else if (code?.startsWith('commander.')) {
    process.exitCode = 2
  } else {
    process.exitCode = reportError(err, globals().json === true)
  }
}
