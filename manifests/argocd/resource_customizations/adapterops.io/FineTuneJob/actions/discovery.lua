-- Actions on an AdapterOps FineTuneJob: suspend (spec.suspend: true, no new trials start; running
-- trials finish) and resume (spec.suspend: false), offered while the sweep has not finished.
local actions = {}
local finished = false
if obj.status ~= nil and obj.status.conditions ~= nil then
  for _, c in ipairs(obj.status.conditions) do
    if (c.type == "Succeeded" or c.type == "Failed") and c.status == "True" then
      finished = true
    end
  end
end
local suspended = obj.spec.suspend == true

actions["suspend"] = {["disabled"] = finished or suspended, ["iconClass"] = "fa fa-fw fa-pause-circle", ["displayName"] = "Suspend sweep"}
actions["resume"] = {["disabled"] = finished or not suspended, ["iconClass"] = "fa fa-fw fa-play-circle", ["displayName"] = "Resume sweep"}
return actions
