/*
 * main.c - the herald entry point; everything else is in cli.c.
 */
int herald_main(int argc, char **argv);

int
main(int argc, char **argv)
{
	return herald_main(argc, argv);
}
