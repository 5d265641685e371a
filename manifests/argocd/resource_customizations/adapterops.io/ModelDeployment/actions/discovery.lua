-- Actions on an AdapterOps ModelDeployment, offered when they mean something:
--   promote / abort: while a canary runs (status.canary); they name that canary's revision, so a late
--                    click never touches the next canary;
--   pause / resume:  spec.canary.paused (pause holds the canary at its step; with no canary running it
--                    holds the next one at its first step).
local actions = {}
local canary = obj.status ~= nil and obj.status.canary ~= nil and obj.status.canary.revision ~= nil
local paused = obj.spec.canary ~= nil and obj.spec.canary.paused == true

actions["promote"] = {["disabled"] = not canary, ["iconClass"] = "fa fa-fw fa-forward", ["displayName"] = "Promote canary"}
actions["abort"] = {["disabled"] = not canary, ["iconClass"] = "fa fa-fw fa-undo", ["displayName"] = "Abort canary (roll back)"}
actions["pause"] = {["disabled"] = paused, ["iconClass"] = "fa fa-fw fa-pause-circle", ["displayName"] = "Pause rollouts"}
actions["resume"] = {["disabled"] = not paused, ["iconClass"] = "fa fa-fw fa-play-circle", ["displayName"] = "Resume rollouts"}
return actions
