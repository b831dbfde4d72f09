-- Stand-in for lua-term's C module (term.core) in the cross runs: Debian's
-- lua-term is not Multi-Arch: same, so its :<arch> build cannot be
-- installed beside the host's. busted's plainTerminal output only asks
-- whether stdout is a terminal: under ctest it is not.
return {
  isatty = function() return false end,
}
