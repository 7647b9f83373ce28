"""Code that runs inside the jail, in the interpreter nsjail starts; standard library only.

The host never imports these modules to run them: `sandbox.zygotes` sends their source to
the jail, where a short bootstrap executes them under these same names. `zygote` is the
trusted process that forks; `confine` is what every forked process does before untrusted code
runs; `program` runs the program (the untrusted side); `check` runs a check that can only run
in the jail, in a process of its own that talks to the program only through pipes.
"""
